package nfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Usage is what NodeGetVolumeStats reports for a mounted volume.
type Usage struct {
	TotalBytes, AvailableBytes, UsedBytes int64
	TotalInodes, FreeInodes, UsedInodes   int64
}

// ErrStatPending means an earlier statfs of the same path is still blocked
// on the server; another one would only pile up behind it.
var ErrStatPending = errors.New("an earlier statfs of this path is still waiting for the NFS server")

// StatFS runs statfs(2) on mounted volumes with a time bound. A statfs on a
// hard NFS mount whose server is gone blocks in the kernel; the call returns
// when ctx ends, and the blocked goroutine is remembered so that later calls
// for the same path return ErrStatPending at once instead of adding another.
type StatFS struct {
	mu      sync.Mutex
	pending map[string]*statCall
	// OnAbandon, when set, is called when a call returns while its
	// statfs stays blocked; the func it returns is called when that statfs
	// ends. The driver counts these as hung operations. Set it before use.
	OnAbandon func(ctx context.Context) (ended func())
	// statfs is unix.Statfs; tests replace it.
	statfs func(path string, st *unix.Statfs_t) error
}

// NewStatFS returns a StatFS that calls the kernel.
func NewStatFS() *StatFS {
	return &StatFS{pending: map[string]*statCall{}, statfs: unix.Statfs}
}

// Usage returns the file-system figures of path.
func (s *StatFS) Usage(ctx context.Context, path string) (Usage, error) {
	var st unix.Statfs_t
	if err := s.bounded(ctx, path, func() error { return s.statfs(path, &st) }); err != nil {
		return Usage{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	bs := int64(st.Frsize)
	if bs == 0 {
		bs = int64(st.Bsize)
	}
	u := Usage{
		TotalBytes:     int64(st.Blocks) * bs,
		AvailableBytes: int64(st.Bavail) * bs,
		UsedBytes:      int64(st.Blocks-st.Bfree) * bs,
		TotalInodes:    int64(st.Files),
		FreeInodes:     int64(st.Ffree),
	}
	u.UsedInodes = u.TotalInodes - u.FreeInodes
	return u, nil
}

// Check tells whether the mounted directory at path still answers: statfs,
// then open and read one directory entry. statfs alone is not enough: an
// NFSv3 server answers FSSTAT for a directory that was removed and recreated,
// and only the READDIR shows the client its handle is stale. open forces the
// close-to-open revalidation that a plain stat would answer from cache.
func (s *StatFS) Check(ctx context.Context, path string) error {
	return s.bounded(ctx, path, func() error {
		var st unix.Statfs_t
		if err := s.statfs(path, &st); err != nil {
			return fmt.Errorf("statfs %s: %w", path, err)
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := f.Readdirnames(1); err != nil && err != io.EOF {
			return fmt.Errorf("read directory %s: %w", path, err)
		}
		return nil
	})
}

// statCall is one statfs in flight. Guarded by StatFS.mu.
type statCall struct {
	ended func() // from OnAbandon, once the caller has given up on it
}

// bounded runs fn, a file-system call on path, for no longer than ctx allows.
func (s *StatFS) bounded(ctx context.Context, path string, fn func() error) error {
	s.mu.Lock()
	if s.pending[path] != nil {
		s.mu.Unlock()
		return ErrStatPending
	}
	c := &statCall{}
	s.pending[path] = c
	s.mu.Unlock()

	done := make(chan error, 1)
	go func() {
		err := fn()
		s.mu.Lock()
		delete(s.pending, path)
		if c.ended != nil {
			c.ended()
		}
		s.mu.Unlock()
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		s.mu.Lock()
		if s.pending[path] == c && s.OnAbandon != nil {
			c.ended = s.OnAbandon(ctx)
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}
