package nfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestSystemMounterMountPoints(t *testing.T) {
	m := &SystemMounter{MountInfoPath: filepath.Join("testdata", "mountinfo")}
	mps, err := m.MountPoints()
	if err != nil {
		t.Fatalf("MountPoints: %v", err)
	}
	if len(mps) != 5 {
		t.Fatalf("got %d mount points, want 5: %+v", len(mps), mps)
	}
	const podMount = "/var/lib/kubelet/pods/0a1b/volumes/kubernetes.io~csi/pvc-1/mount"
	tests := []struct {
		path   string
		source string
		fstype string
		ro     bool
	}{
		// Stacked mounts: the topmost (last) one is what the path shows.
		{podMount, "10.0.0.1:/srv/nfs/pvc-1", "nfs4", true},
		{"/var/lib/kubelet/plugins/kubernetes.io/csi/nfs.csi.example.io/f00d/globalmount", "[fd00::1]:/export/team-a/db", "nfs", true},
		{"/", "/dev/vda1", "ext4", false},
	}
	for _, tt := range tests {
		mp, ok := LookupMount(mps, tt.path)
		if !ok {
			t.Errorf("LookupMount(%s) found nothing", tt.path)
			continue
		}
		if mp.Source != tt.source || mp.FSType != tt.fstype || mp.ReadOnly() != tt.ro {
			t.Errorf("LookupMount(%s) = %+v (ro=%v), want %s %s ro=%v", tt.path, mp, mp.ReadOnly(), tt.source, tt.fstype, tt.ro)
		}
	}
	// The options are the per-mount ones, not the super block's.
	mp, _ := LookupMount(mps, "/var/lib/kubelet/plugins/kubernetes.io/csi/nfs.csi.example.io/f00d/globalmount")
	if want := []string{"ro", "nosuid", "relatime"}; !reflect.DeepEqual(mp.Options, want) {
		t.Errorf("options = %q, want %q", mp.Options, want)
	}
	if _, ok := LookupMount(mps, "/var/lib/kubelet"); ok {
		t.Error("LookupMount matched a path that is no mount point")
	}

	fm, ok, err := FindMount(m, podMount)
	if err != nil || !ok || !fm.ReadOnly() {
		t.Errorf("FindMount(%s) = %+v, %v, %v", podMount, fm, ok, err)
	}
	if _, ok, err := FindMount(m, "/nowhere"); ok || err != nil {
		t.Errorf("FindMount(/nowhere) = %v, %v", ok, err)
	}
}

func TestSystemMounterMountPointsErrors(t *testing.T) {
	dir := t.TempDir()
	missing := &SystemMounter{MountInfoPath: filepath.Join(dir, "missing")}
	if _, err := missing.MountPoints(); err == nil {
		t.Error("MountPoints of a missing file succeeded")
	}
	if _, _, err := FindMount(missing, "/"); err == nil {
		t.Error("FindMount with an unreadable mount table succeeded")
	}
	bad := filepath.Join(dir, "bad")
	mustWrite(t, bad, "this is not a mountinfo line\n")
	if _, err := (&SystemMounter{MountInfoPath: bad}).MountPoints(); err == nil {
		t.Error("MountPoints of a garbled file succeeded")
	}
	// The default is the live table, which always has "/".
	mps, err := (&SystemMounter{}).MountPoints()
	if err != nil {
		t.Fatalf("MountPoints of /proc/self/mountinfo: %v", err)
	}
	if _, ok := LookupMount(mps, "/"); !ok {
		t.Error("the live mount table has no /")
	}
}

func TestMountPointReadOnly(t *testing.T) {
	tests := []struct {
		opts []string
		want bool
	}{
		{nil, false},
		{[]string{"rw", "relatime"}, false},
		{[]string{"ro"}, true},
		{[]string{"nosuid", "ro", "relatime"}, true},
		{[]string{"rob"}, false},
	}
	for _, tt := range tests {
		if got := (MountPoint{Options: tt.opts}).ReadOnly(); got != tt.want {
			t.Errorf("ReadOnly(%q) = %v, want %v", tt.opts, got, tt.want)
		}
	}
}

func TestIsStale(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{unix.ESTALE, true},
		{fmt.Errorf("open record: %w", unix.ESTALE), true},
		{&os.PathError{Op: "open", Path: "/x", Err: unix.ESTALE}, true},
		{fmt.Errorf("a: %w", fmt.Errorf("b: %w", &os.PathError{Op: "stat", Path: "/x", Err: syscall.ESTALE})), true},
		{&os.PathError{Op: "stat", Path: "/x", Err: unix.ENOTCONN}, false},
		{fmt.Errorf("x: %w", unix.EACCES), false},
		{unix.ENOENT, false},
		{fmt.Errorf("x: %w", unix.ENOENT), false},
		{unix.EEXIST, false},
		{ErrSymlink, false},
		{errors.New("stale"), false},
	}
	for _, tt := range tests {
		if got := IsStale(tt.err); got != tt.want {
			t.Errorf("IsStale(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// fakeMountBinary puts a "mount" script first in PATH.
func fakeMountBinary(t *testing.T, script string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mount"), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return dir
}

func TestSystemMounterMountArgs(t *testing.T) {
	dir := fakeMountBinary(t, `printf '%s\n' "$@" > "$(dirname "$0")/args"`+"\n")
	tests := []struct {
		opts []string
		want []string
	}{
		{[]string{"vers=4.1", "hard"}, []string{"-t", "nfs", "-o", "vers=4.1,hard", "h:/s", "/mnt/t"}},
		{nil, []string{"-t", "nfs", "h:/s", "/mnt/t"}},
	}
	for _, tt := range tests {
		if err := (&SystemMounter{}).Mount(context.Background(), "h:/s", "/mnt/t", tt.opts); err != nil {
			t.Fatalf("Mount: %v", err)
		}
		got := strings.Fields(readFile(t, filepath.Join(dir, "args")))
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("mount %q, want %q", got, tt.want)
		}
	}
}

func TestSystemMounterMountFailure(t *testing.T) {
	fakeMountBinary(t, "echo 'mount.nfs: access denied by server while mounting h:/s' >&2\nexit 32\n")
	err := (&SystemMounter{}).Mount(context.Background(), "h:/s", "/mnt/t", nil)
	var me *MountError
	if !errors.As(err, &me) {
		t.Fatalf("Mount = %v, want a *MountError", err)
	}
	if me.Output != "mount.nfs: access denied by server while mounting h:/s" || me.Source != "h:/s" || me.Target != "/mnt/t" {
		t.Errorf("MountError = %+v", me)
	}
	if me.Failure() != MountAccessDenied {
		t.Errorf("Failure() = %d, want MountAccessDenied", me.Failure())
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		t.Errorf("a failed helper is reported as a context error: %v", err)
	}
}

func TestSystemMounterMountKillsHelperGroup(t *testing.T) {
	dir := fakeMountBinary(t, `echo "mount.nfs: trying 10.0.0.1 prog 100003 vers 3 prot TCP port 2049"
sleep 300 &
echo $! > "$(dirname "$0")/child"
wait
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	result := make(chan error, 1)
	go func() { result <- (&SystemMounter{}).Mount(ctx, "10.0.0.1:/s", "/mnt/t", nil) }()
	// Cancel once the helper has started its child, as a kubelet whose
	// deadline passed would.
	childFile := filepath.Join(dir, "child")
	for i := 0; ; i++ {
		if b, err := os.ReadFile(childFile); err == nil && strings.HasSuffix(string(b), "\n") {
			break
		}
		if i == 30000 {
			t.Fatal("the fake mount helper never started")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	err := <-result
	var me *MountError
	if !errors.As(err, &me) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Mount of a hanging helper = %v, want a MountError with context.Canceled", err)
	}
	if me.Failure() != MountTimedOut {
		t.Errorf("Failure() = %d, want MountTimedOut", me.Failure())
	}
	if !strings.Contains(me.Output, "trying 10.0.0.1") {
		t.Errorf("the helper's output was lost: %q", me.Output)
	}
	// The helper's child was in the killed process group: it is gone (or
	// a zombie waiting for its new parent), not sleeping on.
	b, err := os.ReadFile(childFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	var state string
	for range 10000 {
		state = processState(pid)
		if state == "" || state == "Z" {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if state != "" && state != "Z" {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("the helper's child %d survived the mount's deadline (state %s)", pid, state)
	}
}

// processState returns the state letter of pid from /proc, or "" if it is gone.
func processState(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// pid (comm) S ...
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

// fakeUmount records umount(2) calls and answers them from a script.
type fakeUmount struct {
	mu    sync.Mutex
	calls []int // the flags of each call
	// answer gives the result of the call with these flags; it may block.
	answer func(flags int) error
}

func (f *fakeUmount) umount(_ string, flags int) error {
	f.mu.Lock()
	f.calls = append(f.calls, flags)
	f.mu.Unlock()
	return f.answer(flags)
}

func (f *fakeUmount) flags() []int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func TestSystemMounterUnmountEscalation(t *testing.T) {
	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	block := func() error { <-hang; return nil }
	const plain, force, detach = 0, unix.MNT_FORCE, unix.MNT_DETACH
	// A busy mount stays busy under MNT_FORCE; only MNT_DETACH takes it.
	busy := func(flags int) error {
		if flags == detach {
			return nil
		}
		return unix.EBUSY
	}
	tests := []struct {
		name   string
		umount func(flags int) error
		statfs func() error // the server probe
		want   []int        // the umount calls, by flags
		busy   bool         // a *MountBusyError, left mounted
		fails  bool
	}{
		{"unmounted", func(int) error { return nil }, nil, []int{plain}, false, false},
		{"not a mount point", func(int) error { return unix.EINVAL }, nil, []int{plain}, false, false},
		{"busy, server answers", func(int) error { return unix.EBUSY }, func() error { return nil }, []int{plain}, true, false},
		{"busy, stale handle", func(int) error { return unix.EBUSY }, func() error { return unix.ESTALE }, []int{plain}, true, false},
		{"busy, server does not answer", busy, block, []int{plain, force, detach}, false, false},
		{"busy, statfs fails with EIO", busy, func() error { return unix.EIO }, []int{plain, force, detach}, false, false},
		{"umount hangs, force works", func(flags int) error {
			if flags == plain {
				return block()
			}
			return nil
		}, nil, []int{plain, force}, false, false},
		{"umount and force hang", func(flags int) error {
			if flags == detach {
				return nil
			}
			return block()
		}, nil, []int{plain, force, detach}, false, false},
		{"no privilege", func(int) error { return unix.EPERM }, nil, []int{plain}, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fu := &fakeUmount{answer: tc.umount}
			probe := NewStatFS()
			probe.statfs = func(string, *unix.Statfs_t) error {
				if tc.statfs == nil {
					t.Error("statfs probed, but umount did not answer EBUSY")
					return nil
				}
				return tc.statfs()
			}
			m := &SystemMounter{umount: fu.umount, probe: probe}
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			err := m.Unmount(ctx, "/mnt/t")
			var be *MountBusyError
			switch {
			case tc.busy:
				if !errors.As(err, &be) || be.Target != "/mnt/t" || !errors.Is(err, unix.EBUSY) {
					t.Errorf("Unmount = %v, want a *MountBusyError for /mnt/t", err)
				}
			case tc.fails:
				if err == nil || errors.As(err, &be) {
					t.Errorf("Unmount = %v, want an error that is no *MountBusyError", err)
				}
			case err != nil:
				t.Errorf("Unmount = %v, want nil", err)
			}
			if got := fu.flags(); !slices.Equal(got, tc.want) {
				t.Errorf("umount calls with flags %v, want %v", got, tc.want)
			}
		})
	}
}

// endedContext has ended by Err but never closes Done: the state of a
// context whose deadline passed just after mount(8) exited 0.
type endedContext struct{ context.Context }

func (endedContext) Err() error { return context.DeadlineExceeded }

// A mount that succeeded used to be reported as failed when ctx had ended
// by the time mount(8) exited; the caller then left it mounted (the share
// mount leaked until restart).
func TestRegressionMountSucceededAsContextEnded(t *testing.T) {
	fakeMountBinary(t, "exit 0\n")
	if err := (&SystemMounter{}).Mount(endedContext{context.Background()}, "h:/s", "/mnt/t", nil); err != nil {
		t.Errorf("Mount that succeeded = %v, want nil", err)
	}
}

// A mount helper killed on ctx's end after it had mounted used to leave the
// mount behind a failed Mount.
func TestSystemMounterMountKilledAfterMountingIsUndone(t *testing.T) {
	mountinfo := filepath.Join(t.TempDir(), "mountinfo")
	mustWrite(t, mountinfo, "29 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n")
	fakeMountBinary(t, `echo "101 29 0:52 / /mnt/t rw,relatime shared:60 - nfs4 h:/s rw" >> `+mountinfo+`
sleep 300 &
wait
`)
	fu := &fakeUmount{answer: func(int) error { return nil }}
	m := &SystemMounter{MountInfoPath: mountinfo, umount: fu.umount}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err := m.Mount(ctx, "h:/s", "/mnt/t", nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Mount = %v, want a deadline error", err)
	}
	if got := fu.flags(); !slices.Equal(got, []int{0}) {
		t.Errorf("umount calls with flags %v, want one plain umount of what the helper mounted", got)
	}
}

// mountinfo escapes a space as \040 and a backslash as \134. The parser used
// to keep the escapes: a target or subDir with a space never matched its own
// mount, so a republish answered AlreadyExists and the single-writer check
// missed the mount.
func TestRegressionMountPointsUnescapes(t *testing.T) {
	m := &SystemMounter{MountInfoPath: filepath.Join("testdata", "mountinfo-escaped")}
	mps, err := m.MountPoints()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ path, source string }{
		{"/var/lib/kubelet/pods/0a1b/volumes/kubernetes.io~csi/pvc one/mount", `10.0.0.1:/srv/nfs/team a/back\slash`},
		{`/srv/admin dir\x`, "[fd00::1]:/export/a b"},
	}
	for _, tt := range tests {
		mp, ok := LookupMount(mps, tt.path)
		if !ok {
			t.Errorf("LookupMount(%q) found nothing in %+v", tt.path, mps)
			continue
		}
		if mp.Source != tt.source {
			t.Errorf("LookupMount(%q).Source = %q, want %q", tt.path, mp.Source, tt.source)
		}
	}
	if mp, _ := LookupMount(mps, `/srv/admin dir\x`); !mp.ReadOnly() {
		t.Errorf("options %q: want ro", mp.Options)
	}
}
