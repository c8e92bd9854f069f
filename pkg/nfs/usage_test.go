package nfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestWalkDirCountsTheVolumeOnly(t *testing.T) {
	root := t.TempDir()
	vol := filepath.Join(root, "vol")
	outside := filepath.Join(root, "outside")
	for _, d := range []string{vol + "/a/b", outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p string, n int) {
		if err := os.WriteFile(p, make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(vol+"/f1", 100_000)
	write(vol+"/a/f2", 300_000)
	write(vol+"/a/b/f3", 10)
	write(outside+"/big", 2_000_000)
	if err := os.Link(vol+"/a/f2", vol+"/a/b/f2-link"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, vol+"/escape"); err != nil {
		t.Fatal(err)
	}
	u := walkDir(vol, 1000, func() bool { return false })
	// a, a/b, f1, a/f2, a/b/f3, a/b/f2-link, escape
	if u.Inodes != 7 || u.Partial {
		t.Errorf("walk counted %d entries (partial %v), want 7, complete", u.Inodes, u.Partial)
	}
	out, err := exec.Command("du", "-s", "--block-size=1", vol).Output()
	if err != nil {
		t.Skipf("du: %v", err)
	}
	du, _ := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	rootBlocks := dirBlocks(t, vol)
	if u.Bytes+rootBlocks != du {
		t.Errorf("walk counted %d bytes below the directory (+%d for itself), du -s says %d: the hard link is counted once and the symlink's target not at all", u.Bytes, rootBlocks, du)
	}
	if p := walkDir(vol, 3, func() bool { return false }); !p.Partial || p.Inodes != 3 {
		t.Errorf("a walk bounded to 3 entries = %+v, want 3 and partial", p)
	}
}

func dirBlocks(t *testing.T, p string) int64 {
	out, err := exec.Command("stat", "-c", "%b %B", p).Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out))
	b, _ := strconv.ParseInt(f[0], 10, 64)
	s, _ := strconv.ParseInt(f[1], 10, 64)
	return b * s
}

func TestUsageWalkerNeverWaits(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	walks := 0
	w := &UsageWalker{Interval: time.Minute, MaxEntries: 10, Concurrency: 1}
	w.walk = func(path string, max int64, stop func() bool) DirUsage {
		mu.Lock()
		walks++
		n := walks
		mu.Unlock()
		<-release
		return DirUsage{Bytes: int64(n) * 1000, Inodes: int64(n), At: time.Now()}
	}
	now := time.Now()
	for i := 0; i < 3; i++ { // the walk is blocked; Get still answers at once, and starts no second walk
		if _, ok := w.Get("/v", now); ok {
			t.Fatalf("Get #%d had a result before any walk ended", i+1)
		}
	}
	release <- struct{}{}
	var got DirUsage
	waitFor(t, func() bool { var ok bool; got, ok = w.Get("/v", now); return ok })
	if got.Bytes != 1000 {
		t.Fatalf("Get = %+v, want the first walk's 1000 bytes", got)
	}
	mu.Lock()
	if walks != 1 {
		t.Errorf("%d walks ran for one path within the interval, want 1", walks)
	}
	mu.Unlock()
	// After the interval a new walk starts; the old figure is served meanwhile.
	if u, ok := w.Get("/v", now.Add(2*time.Minute)); !ok || u.Bytes != 1000 {
		t.Errorf("Get after the interval = %+v, %v; want the old figure while the new walk runs", u, ok)
	}
	// A volume unpublished while its walk runs keeps no figure.
	w.Forget("/v")
	release <- struct{}{}
	time.Sleep(10 * time.Millisecond)
	if _, ok := w.Get("/v", now); ok {
		t.Errorf("a walk that ended after Forget left its figure")
	}
	close(release)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// Regression: a background walk held directories of the volume's mount open,
// and NodeUnpublishVolume, which unmounted while it ran, found the mount busy
// (csi-sanity's "Node Service should work" failed over NFSv4.1 with
// FailedPrecondition "still in use"). Stop ends the walk, waits for it, and
// starts none until Forget.
func TestUsageWalkerStopEndsTheWalk(t *testing.T) {
	vol := t.TempDir()
	for i := 0; i < 50; i++ {
		if err := os.MkdirAll(filepath.Join(vol, "d", strconv.Itoa(i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	inWalk := make(chan struct{})
	var once sync.Once
	var stoppedEarly atomic.Bool
	w := &UsageWalker{Interval: time.Minute, MaxEntries: 1000, Concurrency: 1}
	w.walk = func(path string, max int64, stop func() bool) DirUsage {
		first := false
		once.Do(func() { first = true; close(inWalk) })
		for first && !stop() {
			time.Sleep(time.Millisecond) // a slow server: only stop() ends it
		}
		if first {
			stoppedEarly.Store(true)
		}
		return walkDir(path, max, stop)
	}
	w.Get(vol, time.Now())
	<-inWalk
	w.Stop(vol, 5*time.Second)
	if !stoppedEarly.Load() {
		t.Fatal("Stop returned before the walk saw it")
	}
	w.mu.Lock()
	running := w.entries[vol].running
	w.mu.Unlock()
	if running {
		t.Fatal("Stop returned while the walk still ran")
	}
	w.Get(vol, time.Now().Add(time.Hour))
	w.mu.Lock()
	running = w.entries[vol].running
	w.mu.Unlock()
	if running {
		t.Error("a Get after Stop started a walk of a mount about to be unmounted")
	}
	if u := walkDir(vol, 1000, func() bool { return true }); !u.Partial || u.Inodes != 0 {
		t.Errorf("walkDir with stop set counted %+v, want nothing and Partial", u)
	}
	w.Forget(vol)
	if _, ok := w.Get(vol, time.Now()); ok {
		t.Error("Forget kept a figure")
	}
	waitFor(t, func() bool { _, ok := w.Get(vol, time.Now()); return ok })
}
