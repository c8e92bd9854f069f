package nfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestAcquireMountsOnceForConcurrentCallers(t *testing.T) {
	sm, m, _ := newTestShareMounts(t, time.Hour)
	const n = 20
	shares := make([]*Share, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			shares[i], errs[i] = sm.Acquire(context.Background(), testServer, testShare, []string{"vers=4.1", "hard"})
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Acquire #%d: %v", i, err)
		}
	}
	if mounts, _ := m.counts(); mounts != 1 {
		t.Errorf("MountCalls = %d, want 1", mounts)
	}
	if sm.Mounted() != 1 {
		t.Errorf("Mounted() = %d, want 1", sm.Mounted())
	}
	for _, s := range shares[1:] {
		if s.Path() != shares[0].Path() || s.RootFd() != shares[0].RootFd() {
			t.Errorf("callers got different mounts: %s and %s", s.Path(), shares[0].Path())
		}
	}
	if got := shares[0].Source(); got != testServer+":"+testShare {
		t.Errorf("Source() = %q", got)
	}
	if filepath.Dir(shares[0].Path()) != sm.dir {
		t.Errorf("the share is mounted at %s, outside %s", shares[0].Path(), sm.dir)
	}
	var st unix.Stat_t
	if err := unix.Fstat(shares[0].RootFd(), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("RootFd is not an open directory: %v", err)
	}
	for _, s := range shares {
		s.Release()
	}
	// Released but not idle yet: still mounted.
	sm.reap(time.Now())
	if _, unmounts := m.counts(); unmounts != 0 || sm.Mounted() != 1 {
		t.Errorf("after release and an early reap: %d unmounts, %d mounted", unmounts, sm.Mounted())
	}
}

func TestAcquireOptions(t *testing.T) {
	sm, m, _ := newTestShareMounts(t, time.Hour)
	ctx := context.Background()
	acquire := func(opts ...string) *Share {
		t.Helper()
		s, err := sm.Acquire(ctx, testServer, testShare, opts)
		if err != nil {
			t.Fatalf("Acquire(%q): %v", opts, err)
		}
		t.Cleanup(s.Release)
		return s
	}
	v41 := acquire("vers=4.1", "hard")
	v3 := acquire("vers=3", "hard")
	if v41.Path() == v3.Path() {
		t.Fatal("different options share one mount")
	}
	if mounts, _ := m.counts(); mounts != 2 || sm.Mounted() != 2 {
		t.Errorf("MountCalls = %d, Mounted = %d; want 2, 2", mounts, sm.Mounted())
	}
	// Order does not matter, and nolock is implied for the controller.
	if s := acquire("hard", "vers=4.1"); s.Path() != v41.Path() {
		t.Error("reordered options made a new mount")
	}
	if s := acquire("hard", "vers=4.1", "nolock"); s.Path() != v41.Path() {
		t.Error("an explicit nolock made a new mount")
	}
	if mounts, _ := m.counts(); mounts != 2 {
		t.Errorf("MountCalls = %d, want 2", mounts)
	}
	// The mount itself got nolock.
	mps, _ := m.MountPoints()
	mp, ok := LookupMount(mps, v3.Path())
	if !ok || !reflect.DeepEqual(mp.Options, []string{"vers=3", "hard", "nolock"}) || mp.Source != testServer+":"+testShare {
		t.Errorf("mount table entry = %+v, %v", mp, ok)
	}
	// Asking for locks is a different mount.
	if s := acquire("vers=3", "hard", "lock"); s.Path() == v3.Path() {
		t.Error("lock and nolock share one mount")
	}
}

func TestControllerMountOptions(t *testing.T) {
	tests := []struct {
		in, want []string
	}{
		{nil, []string{"nolock"}},
		{[]string{}, []string{"nolock"}},
		{[]string{"vers=3"}, []string{"vers=3", "nolock"}},
		{[]string{"vers=4.2", "hard"}, []string{"vers=4.2", "hard", "nolock"}},
		{[]string{"lock"}, []string{"lock"}},
		{[]string{"nolock", "vers=3"}, []string{"nolock", "vers=3"}},
		{[]string{"vers=3", "local_lock=all"}, []string{"vers=3", "local_lock=all"}},
		{[]string{"local_lock=none"}, []string{"local_lock=none"}},
		{[]string{"local_lock=flock"}, []string{"local_lock=flock"}},
		{[]string{"nolockd"}, []string{"nolockd", "nolock"}}, // not an exact match
	}
	for _, tt := range tests {
		got := ControllerMountOptions(tt.in)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ControllerMountOptions(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// The caller's slice is not written to, even with spare capacity.
	in := make([]string, 1, 4)
	in[0] = "vers=3"
	_ = ControllerMountOptions(in)
	if spare := in[:2]; spare[1] != "" {
		t.Errorf("ControllerMountOptions wrote %q into the caller's array", spare[1])
	}
}

func TestShareKey(t *testing.T) {
	if ShareKey("h:/s", []string{"a", "b"}) != ShareKey("h:/s", []string{"b", "a"}) {
		t.Error("option order changes the key")
	}
	distinct := []string{
		ShareKey("h:/s", nil),
		ShareKey("h:/s", []string{"a"}),
		ShareKey("h:/s2", nil),
		ShareKey("h2:/s", nil),
		ShareKey("h:/s", []string{"a", "b"}),
	}
	seen := map[string]bool{}
	for _, k := range distinct {
		if seen[k] {
			t.Errorf("key %q repeats", k)
		}
		seen[k] = true
	}
	opts := []string{"b", "a"}
	ShareKey("h:/s", opts)
	if opts[0] != "b" {
		t.Error("ShareKey sorted the caller's slice")
	}
}

func TestReapUnmountsIdleShares(t *testing.T) {
	const idle = 10 * time.Minute
	sm, m, _ := newTestShareMounts(t, idle)
	ctx := context.Background()
	s, err := sm.Acquire(ctx, testServer, testShare, nil)
	if err != nil {
		t.Fatal(err)
	}
	mountPath := s.Path()
	held, err := sm.Acquire(ctx, testServer, testShare, []string{"vers=3"})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()

	// A held share is never reaped, however old.
	sm.reap(time.Now().Add(24 * time.Hour))
	if sm.Mounted() != 2 {
		t.Fatalf("Mounted() = %d after reaping held shares, want 2", sm.Mounted())
	}
	s.Release()
	s.Release() // harmless
	sm.reap(time.Now().Add(idle / 2))
	if sm.Mounted() != 2 {
		t.Fatalf("Mounted() = %d before the idle period ended, want 2", sm.Mounted())
	}
	sm.reap(time.Now().Add(idle + time.Second))
	if sm.Mounted() != 1 {
		t.Fatalf("Mounted() = %d after the idle period, want 1", sm.Mounted())
	}
	if _, unmounts := m.counts(); unmounts != 1 {
		t.Errorf("UnmountCalls = %d, want 1", unmounts)
	}
	if exists(t, mountPath) {
		t.Errorf("the mount point %s was not removed", mountPath)
	}
	mps, _ := m.MountPoints()
	if _, ok := LookupMount(mps, mountPath); ok {
		t.Error("the reaped share is still in the mount table")
	}
	// The held share still works.
	if ok, err := DirExists(held, ""); !ok || err != nil {
		t.Errorf("the held share broke: %v, %v", ok, err)
	}
	// The next Acquire mounts again.
	s2, err := sm.Acquire(ctx, testServer, testShare, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Release()
	if mounts, _ := m.counts(); mounts != 3 {
		t.Errorf("MountCalls = %d, want 3", mounts)
	}
}

func TestMarkStale(t *testing.T) {
	sm, m, _ := newTestShareMounts(t, time.Hour)
	ctx := context.Background()
	old1, err := sm.Acquire(ctx, testServer, testShare, nil)
	if err != nil {
		t.Fatal(err)
	}
	old2, err := sm.Acquire(ctx, testServer, testShare, nil)
	if err != nil {
		t.Fatal(err)
	}
	oldPath := old1.Path()
	old1.MarkStale()
	if sm.Mounted() != 0 {
		t.Errorf("Mounted() = %d after MarkStale, want 0", sm.Mounted())
	}

	fresh, err := sm.Acquire(ctx, testServer, testShare, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Release()
	if fresh.Path() == oldPath {
		t.Fatal("Acquire after MarkStale returned the stale mount")
	}
	if mounts, unmounts := m.counts(); mounts != 2 || unmounts != 0 {
		t.Errorf("after the fresh mount: %d mounts, %d unmounts; want 2, 0", mounts, unmounts)
	}
	// Another holder of the stale mount marks it too: the fresh one stays.
	old2.MarkStale()
	if sm.Mounted() != 1 {
		t.Errorf("a second MarkStale of the old mount dropped the fresh one: Mounted() = %d", sm.Mounted())
	}

	old1.Release()
	if _, unmounts := m.counts(); unmounts != 0 {
		t.Error("the stale mount was unmounted while still held")
	}
	old2.Release()
	if _, unmounts := m.counts(); unmounts != 1 {
		t.Errorf("UnmountCalls = %d after the last release of the stale mount, want 1", unmounts)
	}
	if exists(t, oldPath) {
		t.Errorf("the stale mount point %s was not removed", oldPath)
	}
	old2.Release() // harmless
	if _, unmounts := m.counts(); unmounts != 1 {
		t.Errorf("a second Release unmounted again: %d", unmounts)
	}
	if ok, err := DirExists(fresh, ""); !ok || err != nil {
		t.Errorf("the fresh share does not work: %v, %v", ok, err)
	}
}

func TestAcquireMountFailure(t *testing.T) {
	sm, m, dir := newTestShareMounts(t, time.Hour)
	m.FailWith = "mount.nfs: access denied by server while mounting " + testServer + ":" + testShare
	_, err := sm.Acquire(context.Background(), testServer, testShare, nil)
	var me *MountError
	if !errors.As(err, &me) || me.Failure() != MountAccessDenied {
		t.Fatalf("Acquire = %v, want an access-denied MountError", err)
	}
	if sm.Mounted() != 0 {
		t.Errorf("Mounted() = %d after a failed mount, want 0", sm.Mounted())
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a failed mount left %v in %s", entries, dir)
	}

	// The failure is not cached: the next Acquire tries again.
	m.FailWith = ""
	s, err := sm.Acquire(context.Background(), testServer, testShare, nil)
	if err != nil {
		t.Fatalf("Acquire after the failure: %v", err)
	}
	s.Release()
	if mounts, _ := m.counts(); mounts != 2 {
		t.Errorf("MountCalls = %d, want 2", mounts)
	}
}

func TestAcquireUnknownExport(t *testing.T) {
	sm, _, _ := newTestShareMounts(t, time.Hour)
	for _, share := range []string{"/not/exported", "/srv/nfs/missing-subdir"} {
		_, err := sm.Acquire(context.Background(), testServer, share, nil)
		var me *MountError
		if !errors.As(err, &me) {
			t.Errorf("Acquire(%s) = %v, want a MountError", share, err)
		}
	}
	if sm.Mounted() != 0 {
		t.Errorf("Mounted() = %d, want 0", sm.Mounted())
	}
}

func TestAcquireWaiterGivesUp(t *testing.T) {
	sm, m, _ := newTestShareMounts(t, time.Hour)
	block, entered := make(chan struct{}), make(chan struct{}, 1)
	m.mu.Lock()
	m.block, m.entered = block, entered
	m.mu.Unlock()

	type result struct {
		s   *Share
		err error
	}
	first := make(chan result, 1)
	go func() {
		s, err := sm.Acquire(context.Background(), testServer, testShare, nil)
		first <- result{s, err}
	}()
	<-entered // the first caller is inside Mount

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sm.Acquire(ctx, testServer, testShare, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("a waiter with a cancelled context got %v, want context.Canceled", err)
	}

	m.mu.Lock()
	m.block = nil
	m.mu.Unlock()
	close(block)
	r := <-first
	if r.err != nil {
		t.Fatalf("the first Acquire failed: %v", r.err)
	}
	if mounts, _ := m.counts(); mounts != 1 {
		t.Errorf("MountCalls = %d, want 1", mounts)
	}
	// The waiter that gave up holds no reference: one release makes the
	// share reapable.
	r.s.Release()
	sm.reap(time.Now().Add(2 * time.Hour))
	if sm.Mounted() != 0 {
		t.Errorf("Mounted() = %d; the waiter that gave up leaked a reference", sm.Mounted())
	}
}

func TestRecordDirFdIsCached(t *testing.T) {
	sh := acquireTestShare(t)
	a, err := sh.RecordDirFd()
	if err != nil {
		t.Fatal(err)
	}
	b, err := sh.RecordDirFd()
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Errorf("RecordDirFd opened the records directory twice: %d, %d", a, b)
	}
	if !sameInode(t, a, filepath.Join(sh.Path(), RecordDir)) {
		t.Error("RecordDirFd is not the records directory")
	}
}

func TestNewShareMountsDetachesLeftovers(t *testing.T) {
	export := t.TempDir()
	m := newDirMounter(map[string]string{testServer + ":" + testShare: export})
	dir := filepath.Join(t.TempDir(), "shares")
	other := filepath.Join(t.TempDir(), "elsewhere")
	ctx := context.Background()
	for _, p := range []string{filepath.Join(dir, "0123abcd.1"), filepath.Join(dir, "0123abcd.2"), other} {
		mustMkdirAll(t, p)
		if err := m.Mount(ctx, testServer+":"+testShare, p, nil); err != nil {
			t.Fatal(err)
		}
	}
	mustMkdirAll(t, filepath.Join(dir, "empty-leftover"))
	mustWrite(t, filepath.Join(dir, "not-a-mount", "file"), "x")

	sm, err := NewShareMounts(m, dir, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer sm.Close()
	mps, _ := m.MountPoints()
	if len(mps) != 1 || mps[0].Path != other {
		t.Errorf("mount table after NewShareMounts = %+v, want only %s", mps, other)
	}
	if _, unmounts := m.counts(); unmounts != 2 {
		t.Errorf("UnmountCalls = %d, want 2", unmounts)
	}
	for _, p := range []string{"0123abcd.1", "0123abcd.2", "empty-leftover"} {
		if exists(t, filepath.Join(dir, p)) {
			t.Errorf("leftover %s was not removed", p)
		}
	}
	if !exists(t, filepath.Join(dir, "not-a-mount", "file")) {
		t.Error("a non-empty directory that was no mount was removed")
	}
	if sm.Mounted() != 0 {
		t.Errorf("Mounted() = %d, want 0", sm.Mounted())
	}
	// A new mount does not collide with what was there.
	s, err := sm.Acquire(ctx, testServer, testShare, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Release()
}

func TestNewShareMountsCreatesDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	sm, err := NewShareMounts(newDirMounter(nil), dir, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sm.Close()
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Errorf("NewShareMounts did not create %s: %v", dir, err)
	}
	// A path under a file cannot be created.
	file := filepath.Join(t.TempDir(), "file")
	mustWrite(t, file, "x")
	if _, err := NewShareMounts(newDirMounter(nil), filepath.Join(file, "sub"), time.Hour); err == nil {
		t.Error("NewShareMounts under a file succeeded")
	}
}

func TestCloseUnmountsIdleShares(t *testing.T) {
	export := t.TempDir()
	m := newDirMounter(map[string]string{testServer + ":" + testShare: export})
	sm, err := NewShareMounts(m, filepath.Join(t.TempDir(), "shares"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sm.Acquire(context.Background(), testServer, testShare, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Release()
	sm.Close()
	if sm.Mounted() != 0 {
		t.Errorf("Mounted() = %d after Close, want 0", sm.Mounted())
	}
	if mps, _ := m.MountPoints(); len(mps) != 0 {
		t.Errorf("mounts left after Close: %+v", mps)
	}
}

func TestMountErrorMessage(t *testing.T) {
	e := &MountError{Source: "h:/s", Target: "/mnt", Output: "mount.nfs: Connection refused", Err: errors.New("exit status 32")}
	if got := e.Error(); !strings.Contains(got, "h:/s") || !strings.Contains(got, "/mnt") || !strings.Contains(got, "Connection refused") {
		t.Errorf("Error() = %q", got)
	}
	e.Output = ""
	if got := e.Error(); got != "mount h:/s at /mnt: exit status 32" {
		t.Errorf("Error() without output = %q", got)
	}
}
