package nfs

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// dirMounter wraps FakeMounter so that ShareMounts can use it.
//
// FakeMounter "mounts" by replacing the mount point with a symlink to the
// exported directory, but ShareMounts opens its mount point with O_NOFOLLOW
// (dirOpenFlags), which refuses a symlink with ENOTDIR: FakeMounter alone
// cannot back a ShareMounts (see TestFakeMounterBacksShareMounts in the
// report). dirMounter keeps everything FakeMounter does (export lookup,
// FailWith, the mount table, MountCalls and UnmountCalls) and then puts a
// real, empty directory in place of the symlink, as if a freshly mounted,
// empty file system were there. Unmount empties the directory again before
// FakeMounter restores the bare mount point. Tests look at a share's contents
// through Share.Path or Share.RootFd, never through the export directory.
type dirMounter struct {
	*FakeMounter

	mu sync.Mutex
	// block, when not nil, makes Mount wait until it is closed, after
	// sending on entered, so a test can hold a mount in progress.
	block   chan struct{}
	entered chan struct{}
}

func newDirMounter(exports map[string]string) *dirMounter {
	return &dirMounter{FakeMounter: NewFakeMounter(exports)}
}

func (d *dirMounter) Mount(ctx context.Context, source, target string, options []string) error {
	d.mu.Lock()
	block, entered := d.block, d.entered
	d.mu.Unlock()
	if block != nil {
		if entered != nil {
			entered <- struct{}{}
		}
		<-block
	}
	if err := d.FakeMounter.Mount(ctx, source, target, options); err != nil {
		return err
	}
	if err := os.Remove(target); err != nil {
		return err
	}
	return os.Mkdir(target, 0o755)
}

func (d *dirMounter) Unmount(ctx context.Context, target string) error {
	mps, _ := d.MountPoints()
	if _, mounted := LookupMount(mps, target); !mounted {
		return d.FakeMounter.Unmount(ctx, target)
	}
	if fi, err := os.Lstat(target); err == nil && fi.IsDir() {
		if err := os.RemoveAll(target); err != nil {
			return err
		}
		if err := os.Mkdir(target, 0o750); err != nil {
			return err
		}
	}
	return d.FakeMounter.Unmount(ctx, target)
}

func (d *dirMounter) counts() (mounts, unmounts int) {
	d.FakeMounter.mu.Lock()
	defer d.FakeMounter.mu.Unlock()
	return d.MountCalls, d.UnmountCalls
}

const (
	testServer = "nfs.example.test"
	testShare  = "/srv/nfs"
)

// newTestShareMounts returns a ShareMounts over a dirMounter that exports a
// temporary directory as testServer:testShare. It is closed when the test ends.
func newTestShareMounts(t *testing.T, idle time.Duration) (*ShareMounts, *dirMounter, string) {
	t.Helper()
	export := t.TempDir()
	m := newDirMounter(map[string]string{testServer + ":" + testShare: export})
	dir := filepath.Join(t.TempDir(), "shares")
	sm, err := NewShareMounts(m, dir, idle)
	if err != nil {
		t.Fatalf("NewShareMounts: %v", err)
	}
	t.Cleanup(sm.Close)
	return sm, m, dir
}

// acquireTestShare mounts the test share and releases it when the test ends.
func acquireTestShare(t *testing.T) *Share {
	t.Helper()
	sm, _, _ := newTestShareMounts(t, time.Hour)
	sh, err := sm.Acquire(context.Background(), testServer, testShare, nil)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	t.Cleanup(sh.Release)
	return sh
}

// openRoot opens dir the way the brief's callers do and closes it at the end.
func openRoot(t *testing.T, dir string) int {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY, 0)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

func mustMkdirAll(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, p, content string) {
	t.Helper()
	mustMkdirAll(t, filepath.Dir(p))
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func exists(t *testing.T, p string) bool {
	t.Helper()
	_, err := os.Lstat(p)
	if err == nil {
		return true
	}
	if !os.IsNotExist(err) {
		t.Fatalf("lstat %s: %v", p, err)
	}
	return false
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
