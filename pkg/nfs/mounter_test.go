package nfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
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
