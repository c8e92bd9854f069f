package nfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// sameInode reports whether fd is the directory at p.
func sameInode(t *testing.T, fd int, p string) bool {
	t.Helper()
	var a, b unix.Stat_t
	if err := unix.Fstat(fd, &a); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(p, &b); err != nil {
		t.Fatal(err)
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

func TestMkdirAllBeneath(t *testing.T) {
	tests := []struct {
		name     string
		existing []string
		rel      string
		created  []string
	}{
		{"single", nil, "a", []string{"a"}},
		{"nested from nothing", nil, "a/b/c", []string{"a", "a/b", "a/b/c"}},
		{"parent exists", []string{"a"}, "a/b/c", []string{"a/b", "a/b/c"}},
		{"all exist", []string{"a/b/c"}, "a/b/c", nil},
		{"odd names", nil, "#%/ü nicode/..x", []string{"#%", "#%/ü nicode", "#%/ü nicode/..x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for _, e := range tt.existing {
				mustMkdirAll(t, filepath.Join(root, e))
			}
			rootFd := openRoot(t, root)
			fd, created, err := MkdirAllBeneath(rootFd, tt.rel, 0o755)
			if err != nil {
				t.Fatalf("MkdirAllBeneath(%q): %v", tt.rel, err)
			}
			defer unix.Close(fd)
			if !reflect.DeepEqual(created, tt.created) {
				t.Errorf("created = %q, want %q", created, tt.created)
			}
			if !sameInode(t, fd, filepath.Join(root, tt.rel)) {
				t.Errorf("the returned fd is not %s", tt.rel)
			}
		})
	}
}

func TestMkdirAllBeneathRefusesSymlinks(t *testing.T) {
	tests := []struct {
		name    string
		link    string // where the symlink to the outside directory is planted
		rel     string
		created []string
	}{
		{"first component", "a", "a/b/c", nil},
		{"middle component", "a/b", "a/b/c", nil},
		{"last component", "a/b/c", "a/b/c", nil},
		{"below a new dir", "x/y", "x/y/z", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, outside := t.TempDir(), t.TempDir()
			mustMkdirAll(t, filepath.Dir(filepath.Join(root, tt.link)))
			mustSymlink(t, outside, filepath.Join(root, tt.link))
			rootFd := openRoot(t, root)
			fd, created, err := MkdirAllBeneath(rootFd, tt.rel, 0o755)
			if err == nil {
				unix.Close(fd)
				t.Fatalf("MkdirAllBeneath(%q) through a symlink succeeded", tt.rel)
			}
			if fd != -1 {
				t.Errorf("fd = %d with an error, want -1", fd)
			}
			if !errors.Is(err, ErrSymlink) {
				t.Errorf("error %v does not wrap ErrSymlink", err)
			}
			if !reflect.DeepEqual(created, tt.created) {
				t.Errorf("created = %q, want %q", created, tt.created)
			}
			entries, err := os.ReadDir(outside)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 0 {
				t.Errorf("something was created outside the root: %v", entries)
			}
		})
	}
}

func TestMkdirAllBeneathRefusesFile(t *testing.T) {
	root := t.TempDir()
	mustWrite(t, filepath.Join(root, "a"), "not a dir")
	_, _, err := MkdirAllBeneath(openRoot(t, root), "a/b", 0o755)
	if !errors.Is(err, ErrSymlink) {
		t.Fatalf("MkdirAllBeneath through a file: %v, want ErrSymlink", err)
	}
}

func TestMkdirAllBeneathRefusesSymlinkPlantedLater(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	rootFd := openRoot(t, root)
	// The driver creates a/b; a user of a/b then plants c -> outside.
	mustMkdirAll(t, filepath.Join(root, "a"))
	fd, created, err := MkdirAllBeneath(rootFd, "a/b", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if !reflect.DeepEqual(created, []string{"a/b"}) {
		t.Fatalf("created = %q", created)
	}
	mustSymlink(t, outside, filepath.Join(root, "a", "b", "c"))
	_, created, err = MkdirAllBeneath(rootFd, "a/b/c/d", 0o755)
	if !errors.Is(err, ErrSymlink) || len(created) != 0 {
		t.Fatalf("MkdirAllBeneath(a/b/c/d) = %q, %v; want no creations and ErrSymlink", created, err)
	}
	if exists(t, filepath.Join(outside, "d")) {
		t.Fatal("d was created outside the root")
	}
}

func TestOpenBeneath(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	mustMkdirAll(t, filepath.Join(root, "a", "b", "c"))
	mustMkdirAll(t, filepath.Join(outside, "c"))
	mustSymlink(t, outside, filepath.Join(root, "a", "link"))
	mustSymlink(t, "b", filepath.Join(root, "a", "rel"))
	mustWrite(t, filepath.Join(root, "a", "file"), "x")
	rootFd := openRoot(t, root)

	tests := []struct {
		rel     string
		want    string // path it must open, relative to root
		symlink bool   // want ErrSymlink
		noent   bool   // want ENOENT
	}{
		{rel: "", want: ""},
		{rel: "a", want: "a"},
		{rel: "a/b/c", want: "a/b/c"},
		{rel: "a/link", symlink: true},
		{rel: "a/link/c", symlink: true},
		{rel: "a/rel", symlink: true},
		{rel: "a/rel/c", symlink: true},
		{rel: "a/file", symlink: true},
		{rel: "a/missing", noent: true},
		{rel: "a/missing/x", noent: true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.rel), func(t *testing.T) {
			fd, err := OpenBeneath(rootFd, tt.rel)
			switch {
			case tt.symlink:
				if !errors.Is(err, ErrSymlink) {
					t.Errorf("OpenBeneath(%q) = %d, %v; want ErrSymlink", tt.rel, fd, err)
				}
			case tt.noent:
				if !errors.Is(err, unix.ENOENT) {
					t.Errorf("OpenBeneath(%q) = %d, %v; want ENOENT", tt.rel, fd, err)
				}
			default:
				if err != nil {
					t.Fatalf("OpenBeneath(%q): %v", tt.rel, err)
				}
				if !sameInode(t, fd, filepath.Join(root, tt.want)) {
					t.Errorf("OpenBeneath(%q) opened something else", tt.rel)
				}
				if fd == rootFd {
					t.Errorf("OpenBeneath(%q) returned the root fd itself; the caller closes it", tt.rel)
				}
			}
			if err == nil {
				unix.Close(fd)
			} else if fd != -1 {
				t.Errorf("fd = %d with an error, want -1", fd)
			}
		})
	}
	// The root fd is still usable after all of that.
	if !sameInode(t, rootFd, root) {
		t.Fatal("the root fd changed")
	}
}

// buildTree makes a volume-like tree under dir: files, empty and deep
// directories, symlinks of every kind, a FIFO, and more entries than one
// ReadDir batch.
func buildTree(t *testing.T, dir string) {
	t.Helper()
	mustWrite(t, filepath.Join(dir, "top.txt"), "top")
	mustWrite(t, filepath.Join(dir, "a", "b", "c", "d", "e", "deep.txt"), "deep")
	mustWrite(t, filepath.Join(dir, "a", "b", "sibling.bin"), "bin")
	mustMkdirAll(t, filepath.Join(dir, "empty", "dirs", "only"))
	mustWrite(t, filepath.Join(dir, ".hidden", ".file"), "h")
	mustSymlink(t, "top.txt", filepath.Join(dir, "rel-link"))
	mustSymlink(t, "a/b", filepath.Join(dir, "dir-link"))
	mustSymlink(t, "/nonexistent/target", filepath.Join(dir, "a", "dangling"))
	if err := unix.Mkfifo(filepath.Join(dir, "a", "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 600 { // more than one ReadDir batch of 256
		mustWrite(t, filepath.Join(dir, "many", fmt.Sprintf("f%03d", i)), "")
	}
}

func TestRemoveTreeAt(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	mustWrite(t, filepath.Join(outside, "precious.txt"), "keep me")
	mustWrite(t, filepath.Join(outside, "sub", "also.txt"), "keep me too")
	vol := filepath.Join(root, "vol")
	buildTree(t, vol)
	// Symlinks to a directory outside the root, at the top of the tree and
	// deep inside it: they must be unlinked, not entered.
	mustSymlink(t, outside, filepath.Join(vol, "escape"))
	mustSymlink(t, outside, filepath.Join(vol, "a", "b", "c", "escape"))
	mustSymlink(t, filepath.Join(outside, "sub"), filepath.Join(vol, "many", "escape-sub"))
	mustWrite(t, filepath.Join(root, "neighbour", "n.txt"), "n")

	rootFd := openRoot(t, root)
	if err := RemoveTreeAt(rootFd, "vol"); err != nil {
		t.Fatalf("RemoveTreeAt: %v", err)
	}
	if exists(t, vol) {
		t.Error("vol still exists")
	}
	for _, p := range []string{
		filepath.Join(outside, "precious.txt"),
		filepath.Join(outside, "sub", "also.txt"),
		filepath.Join(root, "neighbour", "n.txt"),
	} {
		if !exists(t, p) {
			t.Errorf("%s was removed", p)
		}
	}
	if got := readFile(t, filepath.Join(outside, "precious.txt")); got != "keep me" {
		t.Errorf("outside file changed: %q", got)
	}
}

func TestRemoveTreeAtSingleEntries(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, root, outside string)
	}{
		{"empty dir", func(t *testing.T, root, _ string) { mustMkdirAll(t, filepath.Join(root, "x")) }},
		{"file", func(t *testing.T, root, _ string) { mustWrite(t, filepath.Join(root, "x"), "f") }},
		{"symlink to outside dir", func(t *testing.T, root, outside string) { mustSymlink(t, outside, filepath.Join(root, "x")) }},
		{"dangling symlink", func(t *testing.T, root, _ string) { mustSymlink(t, "nowhere", filepath.Join(root, "x")) }},
		{"missing", func(*testing.T, string, string) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, outside := t.TempDir(), t.TempDir()
			mustWrite(t, filepath.Join(outside, "keep"), "k")
			tt.setup(t, root, outside)
			if err := RemoveTreeAt(openRoot(t, root), "x"); err != nil {
				t.Fatalf("RemoveTreeAt: %v", err)
			}
			if exists(t, filepath.Join(root, "x")) {
				t.Error("x still exists")
			}
			if !exists(t, filepath.Join(outside, "keep")) {
				t.Error("the symlink's target was emptied")
			}
		})
	}
}

func TestRemoveTreeAtBusyFiles(t *testing.T) {
	root := t.TempDir()
	vol := filepath.Join(root, "vol")
	buildTree(t, vol)
	mustWrite(t, filepath.Join(vol, "a", "b", ".nfs000000000012345600000001"), "open elsewhere")
	mustWrite(t, filepath.Join(vol, ".nfs00000000abcdef0000000002"), "open elsewhere")
	rootFd := openRoot(t, root)

	err := RemoveTreeAt(rootFd, "vol")
	var busy *BusyError
	if !errors.As(err, &busy) {
		t.Fatalf("RemoveTreeAt = %v, want a *BusyError", err)
	}
	if !errors.Is(err, ErrBusy) {
		t.Errorf("%v does not match ErrBusy", err)
	}
	want := []string{"vol/.nfs00000000abcdef0000000002", "vol/a/b/.nfs000000000012345600000001"}
	got := slices.Sorted(slices.Values(busy.Files))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("busy files = %q, want %q", got, want)
	}
	for _, f := range want {
		if !exists(t, filepath.Join(root, f)) {
			t.Errorf("busy file %s was removed", f)
		}
	}
	// Everything else is gone: only the busy files and their parents remain.
	var left []string
	_ = filepath.WalkDir(vol, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		left = append(left, rel)
		return nil
	})
	slices.Sort(left)
	wantLeft := []string{"vol", "vol/.nfs00000000abcdef0000000002", "vol/a", "vol/a/b", "vol/a/b/.nfs000000000012345600000001"}
	if !reflect.DeepEqual(left, wantLeft) {
		t.Errorf("left after a busy removal: %q, want %q", left, wantLeft)
	}

	// Once the other client closes its files, a retry finishes the job.
	for _, f := range want {
		if err := os.Remove(filepath.Join(root, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := RemoveTreeAt(rootFd, "vol"); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if exists(t, vol) {
		t.Error("vol still exists after the retry")
	}
}

// TestRegressionRemoveTreeAtSillyRenameDuringRemoval: an NFS client that
// still holds a file open renames it to .nfsXXXX when it is unlinked, so
// the unlink succeeds and the entry is back under another name before the
// directory's rmdir. In the e2e and integration beds (the controller's and
// the node's mounts of one export share the kernel's NFS superblock) this
// happened to an enforced volume deleted right after writes had hit its
// quota: the first DeleteVolume USED to fail with Internal "rmdir: directory
// not empty", naming nothing; now the removal rescans the directory and
// reports the silly-renamed file as busy, and the retry succeeds.
func TestRegressionRemoveTreeAtSillyRenameDuringRemoval(t *testing.T) {
	for _, tc := range []struct{ name, dir, silly string }{
		{"the volume itself", "vol", "vol/.nfs0000000000001234000000a1"},
		{"a directory below it", "vol/a/b", "vol/a/b/.nfs0000000000005678000000a2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			buildTree(t, filepath.Join(root, "vol"))
			mustWrite(t, filepath.Join(root, "vol", "a", "b", "file"), "data")
			rootFd := openRoot(t, root)
			renamed := false
			beforeEmptiedRmdir = func(parentFd int, name string) {
				if !renamed && filepath.Join(root, tc.dir) == filepath.Join(fdPath(t, parentFd), name) {
					renamed = true
					mustWrite(t, filepath.Join(root, tc.silly), "open on a client")
				}
			}
			t.Cleanup(func() { beforeEmptiedRmdir = nil })

			err := RemoveTreeAt(rootFd, "vol")
			var busy *BusyError
			if !errors.As(err, &busy) || !reflect.DeepEqual(busy.Files, []string{tc.silly}) {
				t.Fatalf("RemoveTreeAt = %v, want a *BusyError naming %s", err, tc.silly)
			}
			if !renamed {
				t.Fatal("the test's silly rename never happened")
			}
			// The client closes the file and removes its .nfs name itself.
			if err := os.Remove(filepath.Join(root, tc.silly)); err != nil {
				t.Fatal(err)
			}
			if err := RemoveTreeAt(rootFd, "vol"); err != nil || exists(t, filepath.Join(root, "vol")) {
				t.Fatalf("retry: %v", err)
			}
		})
	}
}

// fdPath is the path of an open directory.
func fdPath(t *testing.T, fd int) string {
	t.Helper()
	p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRemoveEmptyParents(t *testing.T) {
	tests := []struct {
		name     string
		dirs     []string // created before; rel itself is already gone
		files    []string
		rel      string
		wantGone []string
		wantKept []string
	}{
		{
			name: "all parents empty", dirs: []string{"ns/app"}, rel: "ns/app/pvc",
			wantGone: []string{"ns/app", "ns"},
		},
		{
			name: "stops at a non-empty parent", dirs: []string{"ns/app", "ns/other"}, rel: "ns/app/pvc",
			wantGone: []string{"ns/app"}, wantKept: []string{"ns", "ns/other"},
		},
		{
			name: "stops at a parent with a file", dirs: []string{"ns/app"}, files: []string{"ns/README"}, rel: "ns/app/pvc",
			wantGone: []string{"ns/app"}, wantKept: []string{"ns", "ns/README"},
		},
		{
			name: "immediate parent not empty", dirs: []string{"ns/app/pvc-2"}, rel: "ns/app/pvc",
			wantKept: []string{"ns", "ns/app", "ns/app/pvc-2"},
		},
		{
			name: "no parents", dirs: []string{"other"}, rel: "pvc",
			wantKept: []string{"other"},
		},
		{
			name: "parents already gone", rel: "ns/app/pvc",
		},
		{
			name: "rel still exists: its parents are not empty", dirs: []string{"ns/pvc"}, rel: "ns/pvc",
			wantKept: []string{"ns", "ns/pvc"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for _, d := range tt.dirs {
				mustMkdirAll(t, filepath.Join(root, d))
			}
			for _, f := range tt.files {
				mustWrite(t, filepath.Join(root, f), "x")
			}
			if err := RemoveEmptyParents(openRoot(t, root), tt.rel, ownsAll, forget); err != nil {
				t.Fatalf("RemoveEmptyParents(%q): %v", tt.rel, err)
			}
			for _, p := range tt.wantGone {
				if exists(t, filepath.Join(root, p)) {
					t.Errorf("%s still exists", p)
				}
			}
			for _, p := range tt.wantKept {
				if !exists(t, filepath.Join(root, p)) {
					t.Errorf("%s was removed", p)
				}
			}
			if !exists(t, root) {
				t.Fatal("the root was removed")
			}
		})
	}
}

func TestRemoveEmptyParentsNeverFollowsSymlinks(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	mustMkdirAll(t, filepath.Join(outside, "app"))
	mustSymlink(t, outside, filepath.Join(root, "ns"))
	err := RemoveEmptyParents(openRoot(t, root), "ns/app/pvc", ownsAll, forget)
	if !errors.Is(err, ErrSymlink) {
		t.Errorf("RemoveEmptyParents through a symlink = %v, want ErrSymlink", err)
	}
	if !exists(t, filepath.Join(outside, "app")) {
		t.Error("an empty directory outside the root was removed")
	}
	if !exists(t, filepath.Join(root, "ns")) {
		t.Error("the symlink was removed")
	}
}

func TestBusyErrorMessage(t *testing.T) {
	err := error(&BusyError{Files: []string{"v/.nfs1", "v/a/.nfs2"}})
	if got, want := err.Error(), ErrBusy.Error()+": v/.nfs1, v/a/.nfs2"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	wrapped := fmt.Errorf("delete: %w", err)
	if !errors.Is(wrapped, ErrBusy) {
		t.Error("a wrapped BusyError does not match ErrBusy")
	}
}

func ownsAll(string) (bool, error) { return true, nil }
func forget(string) error          { return nil }

// Parents the driver did not create (an admin's directory) stay, even empty,
// and removal stops there.
func TestRemoveEmptyParentsOnlyOwned(t *testing.T) {
	root := t.TempDir()
	mustMkdirAll(t, filepath.Join(root, "admin", "tpl"))
	var removed []string
	owned := func(dir string) (bool, error) { return dir == "admin/tpl", nil }
	err := RemoveEmptyParents(openRoot(t, root), "admin/tpl/pvc", owned, func(dir string) error {
		removed = append(removed, dir)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if exists(t, filepath.Join(root, "admin", "tpl")) {
		t.Error("the driver's empty parent admin/tpl survived")
	}
	if !exists(t, filepath.Join(root, "admin")) {
		t.Error("the admin's empty directory was removed")
	}
	if len(removed) != 1 || removed[0] != "admin/tpl" {
		t.Errorf("removed callbacks = %v, want [admin/tpl]", removed)
	}
}

// Without an fd, a final directory that already exists is still checked: a
// symlink there is refused, a real directory accepted, and a new one created.
func TestMkdirAllBeneathNoFd(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	mustMkdirAll(t, filepath.Join(root, "a"))
	mustSymlink(t, outside, filepath.Join(root, "a", "link"))
	rootFd := openRoot(t, root)
	if _, err := MkdirAllBeneathNoFd(rootFd, "a/link", 0o755); !errors.Is(err, ErrSymlink) {
		t.Errorf("existing symlink as the final component: %v, want ErrSymlink", err)
	}
	created, err := MkdirAllBeneathNoFd(rootFd, "a/new/leaf", 0o755)
	if err != nil || len(created) != 2 || created[1] != "a/new/leaf" {
		t.Fatalf("created %v, %v", created, err)
	}
	if created, err := MkdirAllBeneathNoFd(rootFd, "a/new/leaf", 0o755); err != nil || len(created) != 0 {
		t.Errorf("existing directory: created %v, %v", created, err)
	}
	if !exists(t, filepath.Join(root, "a", "new", "leaf")) {
		t.Error("leaf was not created")
	}
}
