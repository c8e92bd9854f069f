package nfs

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestStatFSUsageOnTempDir(t *testing.T) {
	s := NewStatFS()
	u, err := s.Usage(context.Background(), t.TempDir())
	if err != nil {
		t.Fatalf("Usage: %v", err)
	}
	if u.TotalBytes <= 0 || u.AvailableBytes < 0 || u.UsedBytes < 0 || u.AvailableBytes > u.TotalBytes || u.UsedBytes > u.TotalBytes {
		t.Errorf("implausible byte figures: %+v", u)
	}
	if u.TotalInodes < 0 || u.FreeInodes < 0 || u.UsedInodes != u.TotalInodes-u.FreeInodes {
		t.Errorf("implausible inode figures: %+v", u)
	}
	if len(s.pending) != 0 {
		t.Errorf("pending = %v after a finished call", s.pending)
	}
}

func TestStatFSUsageMissingPath(t *testing.T) {
	s := NewStatFS()
	p := filepath.Join(t.TempDir(), "missing")
	if _, err := s.Usage(context.Background(), p); !errors.Is(err, unix.ENOENT) {
		t.Fatalf("Usage of a missing path = %v, want ENOENT", err)
	}
	// A failed call does not leave the path pending.
	if _, err := s.Usage(context.Background(), p); errors.Is(err, ErrStatPending) {
		t.Fatal("a failed statfs left the path pending")
	}
}

func TestStatFSUsageFigures(t *testing.T) {
	tests := []struct {
		name string
		st   unix.Statfs_t
		want Usage
	}{
		{
			name: "frsize",
			st:   unix.Statfs_t{Bsize: 1 << 20, Frsize: 4096, Blocks: 1000, Bfree: 300, Bavail: 200, Files: 500, Ffree: 120},
			want: Usage{TotalBytes: 4096000, AvailableBytes: 819200, UsedBytes: 2867200, TotalInodes: 500, FreeInodes: 120, UsedInodes: 380},
		},
		{
			name: "no frsize: bsize",
			st:   unix.Statfs_t{Bsize: 512, Blocks: 10, Bfree: 4, Bavail: 4, Files: 7, Ffree: 7},
			want: Usage{TotalBytes: 5120, AvailableBytes: 2048, UsedBytes: 3072, TotalInodes: 7, FreeInodes: 7, UsedInodes: 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewStatFS()
			s.statfs = func(path string, st *unix.Statfs_t) error {
				if path != "/vol" {
					t.Errorf("statfs(%q), want /vol", path)
				}
				*st = tt.st
				return nil
			}
			u, err := s.Usage(context.Background(), "/vol")
			if err != nil || u != tt.want {
				t.Errorf("Usage = %+v, %v; want %+v", u, err, tt.want)
			}
		})
	}
}

func TestStatFSUsageBlockedServer(t *testing.T) {
	unblock := make(chan struct{})
	entered := make(chan string, 10)
	s := NewStatFS()
	var abandoned, ended atomic.Int32
	s.OnAbandon = func(context.Context) func() {
		abandoned.Add(1)
		return func() { ended.Add(1) }
	}
	s.statfs = func(path string, st *unix.Statfs_t) error {
		entered <- path
		<-unblock
		st.Bsize, st.Blocks, st.Bfree, st.Bavail = 4096, 100, 50, 50
		return nil
	}
	const dead = "/var/lib/kubelet/pods/x/volumes/dead"

	// A call whose context ends returns the context's error, although the
	// statfs below it is still blocked.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Usage(ctx, dead); !errors.Is(err, context.Canceled) {
		t.Fatalf("Usage with a blocked statfs = %v, want context.Canceled", err)
	}

	// While it stays blocked, further calls for the path return at once
	// instead of piling up: no new statfs is started.
	for range 3 {
		if _, err := s.Usage(context.Background(), dead); !errors.Is(err, ErrStatPending) {
			t.Fatalf("second Usage = %v, want ErrStatPending", err)
		}
	}
	if got := <-entered; got != dead {
		t.Fatalf("statfs(%q)", got)
	}
	if n := len(entered); n != 0 {
		t.Fatalf("%d more statfs calls started while one was blocked", n)
	}

	// Another path is not held up by the blocked one (its statfs blocks
	// too, so run it with an ended context).
	if _, err := s.Usage(ctx, "/other"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Usage of another path = %v, want context.Canceled", err)
	}
	<-entered

	// Each blocked statfs was reported abandoned once (the ErrStatPending
	// calls started none), and none has ended.
	if a, e := abandoned.Load(), ended.Load(); a != 2 || e != 0 {
		t.Errorf("OnAbandon called %d times and its ended %d times while blocked; want 2 and 0", a, e)
	}

	// The server comes back: the blocked call finishes and frees the path.
	close(unblock)
	var (
		u   Usage
		err error
	)
	deadline := time.Now().Add(30 * time.Second)
	for {
		u, err = s.Usage(context.Background(), dead)
		if !errors.Is(err, ErrStatPending) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Usage after the server came back: %v", err)
	}
	if u.TotalBytes != 409600 || u.AvailableBytes != 204800 {
		t.Errorf("Usage after the server came back = %+v", u)
	}
	// Both blocked statfs calls have ended: dead's, which the loop above
	// waited for, and /other's, which ends at about the same time.
	for ended.Load() != 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if a, e := abandoned.Load(), ended.Load(); a != 2 || e != 2 {
		t.Errorf("OnAbandon called %d times and its ended %d times after the server came back; want 2 and 2", a, e)
	}
}
