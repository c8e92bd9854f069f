package nfs

import (
	"context"
	"errors"
	"fmt"
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
	pending map[string]bool
	// statfs is unix.Statfs; tests replace it.
	statfs func(path string, st *unix.Statfs_t) error
}

// NewStatFS returns a StatFS that calls the kernel.
func NewStatFS() *StatFS {
	return &StatFS{pending: map[string]bool{}, statfs: unix.Statfs}
}

// Usage returns the file-system figures of path.
func (s *StatFS) Usage(ctx context.Context, path string) (Usage, error) {
	s.mu.Lock()
	if s.pending[path] {
		s.mu.Unlock()
		return Usage{}, ErrStatPending
	}
	s.pending[path] = true
	s.mu.Unlock()

	type result struct {
		st  unix.Statfs_t
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		r.err = s.statfs(path, &r.st)
		s.mu.Lock()
		delete(s.pending, path)
		s.mu.Unlock()
		done <- r
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return Usage{}, fmt.Errorf("statfs %s: %w", path, r.err)
		}
		bs := int64(r.st.Frsize)
		if bs == 0 {
			bs = int64(r.st.Bsize)
		}
		u := Usage{
			TotalBytes:     int64(r.st.Blocks) * bs,
			AvailableBytes: int64(r.st.Bavail) * bs,
			UsedBytes:      int64(r.st.Blocks-r.st.Bfree) * bs,
			TotalInodes:    int64(r.st.Files),
			FreeInodes:     int64(r.st.Ffree),
		}
		u.UsedInodes = u.TotalInodes - u.FreeInodes
		return u, nil
	case <-ctx.Done():
		return Usage{}, fmt.Errorf("statfs %s: %w", path, ctx.Err())
	}
}
