package agent

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/example/nfs-csi/pkg/nfs"
)

// bed is a root with volumes whose records the driver would have written.
type bed struct {
	t      *testing.T
	root   string
	quotas *FakeQuotas
	agent  *Agent
}

func newBed(t *testing.T, ids IDRange) *bed {
	t.Helper()
	root := t.TempDir()
	q := NewFakeQuotas()
	a, err := New([]Root{{Share: "/export", Path: root}, {Share: "/", Path: root}}, ids, q)
	if err != nil {
		t.Fatal(err)
	}
	return &bed{t: t, root: root, quotas: q, agent: a}
}

func (b *bed) volume(subDir string, rec nfs.Record) Request {
	b.t.Helper()
	if err := os.MkdirAll(filepath.Join(b.root, subDir), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if rec.VolumeID == "" {
		rec.VolumeID = "vol-" + subDir
	}
	b.record(subDir, rec)
	return Request{Share: "/export", SubDir: subDir, VolumeID: "vol-" + subDir}
}

func (b *bed) record(subDir string, rec nfs.Record) {
	b.t.Helper()
	rootFd, err := unix.Open(b.root, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		b.t.Fatal(err)
	}
	defer unix.Close(rootFd)
	recFd, err := nfs.OpenRecordDir(rootFd)
	if err != nil {
		b.t.Fatal(err)
	}
	defer unix.Close(recFd)
	if err := nfs.CreateRecord(recFd, subDir, rec); err != nil {
		b.t.Fatal(err)
	}
}

func (b *bed) projectOf(subDir string) uint32 {
	b.t.Helper()
	fd, err := unix.Open(filepath.Join(b.root, subDir), unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		b.t.Fatal(err)
	}
	defer unix.Close(fd)
	id, _, _ := b.quotas.Project(fd)
	return id
}

// tree lists every path below the root with its symlink target, and the
// fake's state: what a refusal must leave unchanged.
func (b *bed) tree() string {
	b.t.Helper()
	var lines []string
	err := filepath.WalkDir(b.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		l := strings.TrimPrefix(p, b.root)
		if d.Type()&fs.ModeSymlink != 0 {
			t, _ := os.Readlink(p)
			l += " -> " + t
		}
		lines = append(lines, l)
		return nil
	})
	if err != nil {
		b.t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n" + b.quotas.State()
}

func code(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func TestSetAssignsOneIDPerDirectoryAndKeepsIt(t *testing.T) {
	b := newBed(t, IDRange{Min: 100, Max: 199})
	a := b.volume("a", nfs.Record{})
	c := b.volume("team/c", nfs.Record{})

	a.CapacityBytes = 1 << 20
	st, err := b.agent.Set(a)
	if err != nil {
		t.Fatal(err)
	}
	if st.ProjectID != 100 || st.LimitBytes != 1<<20 {
		t.Fatalf("first Set = %+v, want project 100 with a 1 MiB limit", st)
	}
	a.CapacityBytes = 2 << 20
	if st, err = b.agent.Set(a); err != nil || st.ProjectID != 100 || st.LimitBytes != 2<<20 {
		t.Fatalf("Set again = %+v, %v; want project 100 raised to 2 MiB", st, err)
	}
	c.CapacityBytes = 5
	if st, err = b.agent.Set(c); err != nil || st.ProjectID != 101 {
		t.Fatalf("Set of a second directory = %+v, %v; want project 101", st, err)
	}
	if !b.quotas.Inherit[inoOf(t, filepath.Join(b.root, "a"))] {
		t.Errorf("directory a has no inherit flag: new files would not be charged")
	}
	// A new agent (a restart) reads the assignments from the file system.
	again, _ := New(b.agent.roots, b.agent.ids, b.quotas)
	if st, err = again.Get(Request{Share: "/", SubDir: "team/c", VolumeID: "vol-team/c"}); err != nil || st.ProjectID != 101 || st.LimitBytes != 5 {
		t.Fatalf("Get after a restart through the other share name = %+v, %v; want project 101, limit 5", st, err)
	}
}

func inoOf(t *testing.T, p string) uint64 {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestSetSkipsIDsStillCharged(t *testing.T) {
	b := newBed(t, IDRange{Min: 100, Max: 102})
	b.quotas.Usage[100] = Quota{UsedInodes: 3} // a retained directory's files, or an admin's project
	b.quotas.Limits[101] = 1 << 30
	req := b.volume("a", nfs.Record{})
	req.CapacityBytes = 10
	st, err := b.agent.Set(req)
	if err != nil || st.ProjectID != 102 {
		t.Fatalf("Set = %+v, %v; want project 102, the only one with no usage and no limit", st, err)
	}
	other := b.volume("b", nfs.Record{})
	other.CapacityBytes = 10
	before := b.tree()
	if _, err := b.agent.Set(other); code(err) != CodeResourceExhausted {
		t.Fatalf("Set with the range used up = %v, want ResourceExhausted", err)
	}
	if after := b.tree(); after != before {
		t.Errorf("a refused Set changed the tree:\n%s\nto\n%s", before, after)
	}
}

func TestRefusalsChangeNothing(t *testing.T) {
	b := newBed(t, IDRange{Min: 100, Max: 199})
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(b.root, "link")); err != nil {
		t.Fatal(err)
	}
	b.record("link/x", nfs.Record{VolumeID: "vol-link/x"})
	if err := os.MkdirAll(filepath.Join(outside, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(b.root, "norecord"), 0o755); err != nil {
		t.Fatal(err)
	}
	b.volume("tomb", nfs.Record{Tombstone: true})
	b.volume("other", nfs.Record{VolumeID: "vol-someone-else"})
	b.volume("foreign", nfs.Record{})
	b.quotas.Projects[inoOf(t, filepath.Join(b.root, "foreign"))] = 42 // an admin's /etc/projects entry
	b.volume("squatted", nfs.Record{})
	b.quotas.Projects[inoOf(t, filepath.Join(b.root, "squatted"))] = 150 // in range, never assigned by the agent
	b.record("gone", nfs.Record{VolumeID: "vol-gone"})

	for _, tc := range []struct {
		name string
		req  Request
		want Code
	}{
		{"share not a root", Request{Share: "/elsewhere", SubDir: "a", VolumeID: "vol-a"}, CodePermissionDenied},
		{"through a symlink", Request{Share: "/export", SubDir: "link/x", VolumeID: "vol-link/x"}, CodePermissionDenied},
		{"no record", Request{Share: "/export", SubDir: "norecord", VolumeID: "vol-norecord"}, CodeFailedPrecondition},
		{"tombstone", Request{Share: "/export", SubDir: "tomb", VolumeID: "vol-tomb"}, CodeFailedPrecondition},
		{"record of another volume", Request{Share: "/export", SubDir: "other", VolumeID: "vol-other"}, CodeFailedPrecondition},
		{"project ID outside the range", Request{Share: "/export", SubDir: "foreign", VolumeID: "vol-foreign"}, CodeFailedPrecondition},
		{"project ID not assigned by the agent", Request{Share: "/export", SubDir: "squatted", VolumeID: "vol-squatted"}, CodeFailedPrecondition},
		{"directory missing", Request{Share: "/export", SubDir: "gone", VolumeID: "vol-gone"}, CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, outsideBefore := b.tree(), listTree(t, outside)
			tc.req.CapacityBytes = 1 << 20
			_, err := b.agent.Set(tc.req)
			if code(err) != tc.want {
				t.Fatalf("Set = %v, want %s", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.req.VolumeID) && tc.want != CodePermissionDenied {
				t.Errorf("message %q does not name the volume", err)
			}
			if tc.name != "directory missing" {
				tc.req.CapacityBytes = 0
				if err := b.agent.Clear(tc.req); code(err) != tc.want {
					t.Errorf("Clear = %v, want %s", err, tc.want)
				}
			}
			if after := b.tree(); after != before {
				t.Errorf("the refusal changed the root:\n%s\nto\n%s", before, after)
			}
			if got := listTree(t, outside); got != outsideBefore {
				t.Errorf("the refusal changed the symlink's target:\n%s\nto\n%s", outsideBefore, got)
			}
		})
	}
}

func listTree(t *testing.T, dir string) string {
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		out = append(out, p)
		return err
	})
	return strings.Join(out, "\n")
}

func TestClearReleasesTheID(t *testing.T) {
	b := newBed(t, IDRange{Min: 100, Max: 199})
	req := b.volume("a", nfs.Record{})
	req.CapacityBytes = 1 << 20
	if _, err := b.agent.Set(req); err != nil {
		t.Fatal(err)
	}
	req.CapacityBytes = 0
	for i := 0; i < 2; i++ { // a retry finds nothing left to do
		if err := b.agent.Clear(req); err != nil {
			t.Fatalf("Clear #%d: %v", i+1, err)
		}
	}
	if id := b.projectOf("a"); id != 0 {
		t.Errorf("directory still has project ID %d after Clear", id)
	}
	if len(b.quotas.Limits) != 0 {
		t.Errorf("limits left after Clear: %v", b.quotas.Limits)
	}
	if _, err := os.Lstat(filepath.Join(b.root, ProjectDir, "id-100")); !os.IsNotExist(err) {
		t.Errorf("the assignment of ID 100 is still there (%v)", err)
	}
	// The ID is free again for a new volume.
	n := b.volume("b", nfs.Record{})
	n.CapacityBytes = 1
	if st, err := b.agent.Set(n); err != nil || st.ProjectID != 100 {
		t.Fatalf("Set of a new volume = %+v, %v; want the released ID 100", st, err)
	}
}

func TestClearOfARemovedDirectoryReleasesTheID(t *testing.T) {
	b := newBed(t, IDRange{Min: 100, Max: 199})
	req := b.volume("a", nfs.Record{})
	req.CapacityBytes = 1 << 20
	if _, err := b.agent.Set(req); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(b.root, "a")); err != nil {
		t.Fatal(err)
	}
	req.CapacityBytes = 0
	if err := b.agent.Clear(req); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.quotas.Limits[100]; ok {
		t.Errorf("the limit of project 100 stayed after its directory went")
	}
	if _, err := os.Lstat(filepath.Join(b.root, ProjectDir, "id-100")); !os.IsNotExist(err) {
		t.Errorf("the assignment of ID 100 is still there (%v)", err)
	}
}

func TestSetFinishesAnAssignmentACrashLeft(t *testing.T) {
	b := newBed(t, IDRange{Min: 100, Max: 199})
	req := b.volume("a", nfs.Record{})
	// The entry was written, the directory never got the ID.
	if err := os.MkdirAll(filepath.Join(b.root, ProjectDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(b.root, ProjectDir, "id-107")); err != nil {
		t.Fatal(err)
	}
	req.CapacityBytes = 10
	st, err := b.agent.Set(req)
	if err != nil || st.ProjectID != 107 || b.projectOf("a") != 107 {
		t.Fatalf("Set = %+v, %v (directory has %d); want the crashed call's ID 107", st, err, b.projectOf("a"))
	}
}

func TestCapacityAddsTheLimits(t *testing.T) {
	b := newBed(t, IDRange{Min: 100, Max: 199})
	for i, sub := range []string{"a", "b"} {
		req := b.volume(sub, nfs.Record{})
		req.CapacityBytes = int64(i+1) << 20
		if _, err := b.agent.Set(req); err != nil {
			t.Fatal(err)
		}
	}
	c, err := b.agent.Capacity(Request{Share: "/export"})
	if err != nil {
		t.Fatal(err)
	}
	if c.PromisedBytes != 3<<20 || c.TotalBytes <= 0 {
		t.Fatalf("Capacity = %+v, want 3 MiB promised and a total", c)
	}
}

func TestParseRootAndRange(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Root
		wantErr bool
	}{
		{in: "/srv/nfs", want: Root{Share: "/srv/nfs", Path: "/srv/nfs"}},
		{in: "/=/srv/export", want: Root{Share: "/", Path: "/srv/export"}},
		{in: "/", wantErr: true},
		{in: "srv", wantErr: true},
		{in: "/srv/../etc", wantErr: true},
	} {
		got, err := ParseRoot(tc.in)
		if (err != nil) != tc.wantErr || err == nil && got != tc.want {
			t.Errorf("ParseRoot(%q) = %+v, %v", tc.in, got, err)
		}
	}
	for _, tc := range []struct {
		in string
		ok bool
	}{{"1-1", true}, {"3000000-3999999", true}, {"0-5", false}, {"5-4", false}, {"7", false}, {"1-4294967295", false}} {
		if _, err := ParseIDRange(tc.in); (err == nil) != tc.ok {
			t.Errorf("ParseIDRange(%q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

func TestIoctlNumbersOfThisArchitecture(t *testing.T) {
	// linux/fs.h on x86 and arm: FS_IOC_FSGETXATTR 0x801c581f, FS_IOC_FSSETXATTR 0x401c5820.
	if iocDirShift == 30 && (fsIocFsGetXattr != 0x801c581f || fsIocFsSetXattr != 0x401c5820) {
		t.Errorf("FS_IOC_FSGETXATTR %#x, FS_IOC_FSSETXATTR %#x, want 0x801c581f and 0x401c5820", fsIocFsGetXattr, fsIocFsSetXattr)
	}
}
