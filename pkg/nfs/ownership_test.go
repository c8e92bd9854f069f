// Regression tests for issue 8: who owns a directory on the share, and what
// DeleteVolume may remove.
package nfs

import (
	"errors"
	"golang.org/x/sys/unix"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// A user's file named like .nfsrc used to be taken for a silly-renamed open
// file (any name starting with .nfs), so DeleteVolume failed with "still in
// use" on every retry, forever.
func TestRegressionUserDotNFSFileDoesNotBlockDelete(t *testing.T) {
	for _, name := range []string{".nfsrc", ".nfs", ".nfs0000000000123456000000011", ".nfs00000000001234560000000g", ".nfs-notes"} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			mustWrite(t, filepath.Join(root, "vol", name), "a user's file")
			rootFd := openRoot(t, root)
			if err := RemoveTreeAt(rootFd, "vol"); err != nil {
				t.Fatalf("RemoveTreeAt with a user's %s: %v", name, err)
			}
			if exists(t, filepath.Join(root, "vol")) {
				t.Error("vol still exists")
			}
		})
	}
}

func TestIsSillyRename(t *testing.T) {
	for name, want := range map[string]bool{
		".nfs000000000012345600000001":  true,
		".nfs00000000ABCDEF0000000002":  false,
		".nfs00000000abcdef0000000002":  true,
		".nfsrc":                        false,
		".nfs":                          false,
		".nfs00000000abcdef000000000":   false,
		".nfs00000000abcdef000000000z":  false,
		"x.nfs00000000abcdef0000000002": false,
	} {
		if got := isSillyRename(name); got != want {
			t.Errorf("isSillyRename(%q) = %v, want %v", name, got, want)
		}
	}
}

// A CreateVolume whose mkdir failed (here: an immutable parent, EPERM even
// for root; on a real share also a root-squashed parent or EDQUOT)
// used to leave its record behind: every later CreateVolume for the same
// subDir under another name, such as the one of a PVC deleted and created
// again, got AlreadyExists forever.
func TestRegressionFailedMkdirRemovesItsRecord(t *testing.T) {
	sh := acquireTestShare(t)
	mustMkdirAll(t, filepath.Join(sh.Path(), "ns"))
	setImmutable(t, filepath.Join(sh.Path(), "ns"), true)
	vol := testVolume("ns/claim", OnDeleteDelete)
	first := testRecord(vol)
	first.Name = "pvc-first"
	if _, err := Provision(sh, vol, first, ProvisionOptions{Compatible: sameName(first)}); err == nil {
		t.Fatal("Provision under a file succeeded")
	}
	if rec, ok := readShareRecord(t, sh, vol.SubDir); ok {
		t.Fatalf("the failed Provision left its record behind: %+v", rec)
	}
	setImmutable(t, filepath.Join(sh.Path(), "ns"), false)
	second := testRecord(vol)
	second.Name = "pvc-second"
	if _, err := Provision(sh, vol, second, ProvisionOptions{Compatible: sameName(second)}); err != nil {
		t.Fatalf("Provision for the recreated claim: %v", err)
	}
}

// A record whose directory never appeared (a controller crashed between the
// two steps, or its mkdir was abandoned on a timeout) used to hold the subDir
// forever. Once it is older than StaleRecordAge, another volume reclaims it;
// a younger one may be another replica's create in progress and is kept.
func TestRegressionStaleRecordIsReclaimed(t *testing.T) {
	sh := acquireTestShare(t)
	recFd, err := sh.RecordDirFd()
	if err != nil {
		t.Fatal(err)
	}
	vol := testVolume("ns/claim", OnDeleteDelete)
	crashed := testRecord(vol)
	crashed.Name = "pvc-crashed"
	crashed.Created = time.Now().Add(-time.Minute).Unix()
	if err := CreateRecord(recFd, vol.SubDir, crashed); err != nil {
		t.Fatal(err)
	}
	next := testRecord(vol)
	next.Name = "pvc-next"
	if _, err := Provision(sh, vol, next, ProvisionOptions{Compatible: sameName(next)}); !errors.Is(err, errConflictTest) {
		t.Fatalf("Provision over a young record without directory = %v, want the conflict", err)
	}
	if err := DeleteRecord(recFd, vol.SubDir); err != nil {
		t.Fatal(err)
	}
	crashed.Created = time.Now().Add(-StaleRecordAge - time.Minute).Unix()
	if err := CreateRecord(recFd, vol.SubDir, crashed); err != nil {
		t.Fatal(err)
	}
	stored, err := Provision(sh, vol, next, ProvisionOptions{Compatible: sameName(next)})
	if err != nil {
		t.Fatalf("Provision over a stale record: %v", err)
	}
	if got, _ := readShareRecord(t, sh, vol.SubDir); got.Name != "pvc-next" || stored.Name != "pvc-next" {
		t.Errorf("record after reclaim = %+v (returned %+v), want pvc-next's", got, stored)
	}
	if !exists(t, filepath.Join(sh.Path(), "ns", "claim")) {
		t.Error("the reclaiming volume has no directory")
	}

	// A stale record whose directory exists is a live volume: never reclaimed.
	vol2 := testVolume("ns/live", OnDeleteDelete)
	live := testRecord(vol2)
	live.Name = "pvc-live"
	live.Created = time.Now().Add(-StaleRecordAge - time.Hour).Unix()
	if err := CreateRecord(recFd, vol2.SubDir, live); err != nil {
		t.Fatal(err)
	}
	mustMkdirAll(t, filepath.Join(sh.Path(), "ns", "live"))
	other := testRecord(vol2)
	other.Name = "pvc-other"
	if _, err := Provision(sh, vol2, other, ProvisionOptions{Compatible: sameName(other)}); !errors.Is(err, errConflictTest) {
		t.Fatalf("Provision over a live volume = %v, want the conflict", err)
	}
}

// sameName is a compatible func that, like the controller's, refuses a record
// of another name.
func sameName(want Record) func(Record) error {
	return func(stored Record) error {
		if stored.Name != want.Name || stored.VolumeID != want.VolumeID {
			return errConflictTest
		}
		return nil
	}
}

// setImmutable sets or clears FS_IMMUTABLE_FL on dir (chattr +i), which
// makes mkdir in it fail even for root. The test is skipped where the file
// system or the missing CAP_LINUX_IMMUTABLE does not allow it.
func setImmutable(t *testing.T, dir string, on bool) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		t.Skipf("FS_IOC_GETFLAGS on %s: %v", dir, err)
	}
	if on {
		flags |= fsImmutableFL
	} else {
		flags &^= fsImmutableFL
	}
	if err := unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags)); err != nil {
		t.Skipf("chattr on %s: %v", dir, err)
	}
	if on {
		t.Cleanup(func() { setImmutable(t, dir, false) })
	}
}

// fsImmutableFL is FS_IMMUTABLE_FL from linux/fs.h.
const fsImmutableFL = 0x10

// Two StorageClasses on one share with subDirs "ns" and "ns/<name>" used to
// put one volume inside the other: deleting the outer volume removed the
// inner one's data while its PV was still bound. CreateVolume now refuses the
// second of the two, in either order.
func TestRegressionNestedVolumesAreRefused(t *testing.T) {
	for _, tt := range []struct{ first, second string }{
		{"k8s", "k8s/pvc-1"},
		{"k8s/pvc-1", "k8s"},
		{"a", "a/b/c"},
		{"a/b/c", "a"},
		{"a/b/c", "a/b"},
	} {
		t.Run(tt.first+" then "+tt.second, func(t *testing.T) {
			sh := acquireTestShare(t)
			first := testVolume(tt.first, OnDeleteDelete)
			firstRec := mustProvision(t, sh, first)
			second := testVolume(tt.second, OnDeleteDelete)
			_, err := Provision(sh, second, testRecord(second), ProvisionOptions{Compatible: sameVolume(testRecord(second))})
			var nested *NestedError
			if !errors.As(err, &nested) {
				t.Fatalf("Provision(%s) after %s = %v, want a *NestedError", tt.second, tt.first, err)
			}
			if nested.OtherDir != tt.first || nested.Other.Name != firstRec.Name {
				t.Errorf("the error names %s (%q), want %s (%q)", nested.OtherDir, nested.Other.Name, tt.first, firstRec.Name)
			}
			for _, want := range []string{tt.first, tt.second, firstRec.Name, first.ID()} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("message %q does not name %q", err, want)
				}
			}
			if _, ok := readShareRecord(t, sh, tt.second); ok {
				t.Error("the refused volume's record was left behind")
			}
			if strings.HasPrefix(tt.second, tt.first+"/") && exists(t, filepath.Join(sh.Path(), tt.second)) {
				t.Error("the refused volume's directory was made")
			}
			// Once the first is gone, the second may be made.
			if _, _, err := Dispose(sh, first, "", time.Now()); err != nil {
				t.Fatal(err)
			}
			mustProvision(t, sh, second)
		})
	}
}

// An outer volume whose mkdir makes its directory skips the lookup for
// volumes below it. An inner volume created at the same time that saw the
// outer directory missing, and then met it at its mkdir, must still find the
// outer record and refuse, leaving nothing of its own inside.
func TestNestedCreateRacingAnOuterOneThatMadeTheDirectory(t *testing.T) {
	sh := acquireTestShare(t)
	outer := testVolume("k8s", OnDeleteDelete)
	inner := testVolume("k8s/team/pvc-1", OnDeleteDelete)
	var outerErr error
	provisionHook = func(v Volume) {
		if v.SubDir != inner.SubDir {
			return
		}
		provisionHook = nil
		_, outerErr = Provision(sh, outer, testRecord(outer), ProvisionOptions{Compatible: sameVolume(testRecord(outer))})
	}
	t.Cleanup(func() { provisionHook = nil })
	_, err := Provision(sh, inner, testRecord(inner), ProvisionOptions{Compatible: sameVolume(testRecord(inner))})
	if outerErr != nil {
		t.Fatalf("Provision(%s) = %v", outer.SubDir, outerErr)
	}
	var nested *NestedError
	if !errors.As(err, &nested) || nested.OtherDir != outer.SubDir {
		t.Fatalf("Provision(%s) racing %s = %v, want a *NestedError naming %s", inner.SubDir, outer.SubDir, err, outer.SubDir)
	}
	if _, ok := readShareRecord(t, sh, inner.SubDir); ok {
		t.Error("the refused volume's record was left behind")
	}
	if exists(t, filepath.Join(sh.Path(), "k8s", "team")) {
		t.Error("the refused volume's directories were left inside the outer volume")
	}
	if !exists(t, filepath.Join(sh.Path(), "k8s")) {
		t.Error("the outer volume's directory was removed")
	}
}

// An inner volume created by the code before the nesting checks (a record,
// no markers) is found in the outer directory.
func TestNestedVolumeOfOldCodeIsFound(t *testing.T) {
	sh := acquireTestShare(t)
	inner := testVolume("k8s/team/pvc-1", OnDeleteDelete)
	writeOldRecord(t, sh, inner)
	mustMkdirAll(t, filepath.Join(sh.Path(), "k8s", "team", "pvc-1"))
	outer := testVolume("k8s", OnDeleteDelete)
	_, err := Provision(sh, outer, testRecord(outer), ProvisionOptions{Compatible: sameVolume(testRecord(outer))})
	var nested *NestedError
	if !errors.As(err, &nested) || nested.OtherDir != inner.SubDir {
		t.Fatalf("Provision(k8s) over an old inner volume = %v, want a *NestedError naming %s", err, inner.SubDir)
	}
}

// Volumes nested before this was refused (two records, one directory inside
// the other): deleting the outer volume used to recurse through the inner
// one's data, and deleting the inner one used to remove the outer's
// directory through the parent marker of the directory it had created.
func TestRegressionDeleteSparesNestedVolumes(t *testing.T) {
	t.Run("outer deleted first", func(t *testing.T) {
		sh := acquireTestShare(t)
		outer, inner := testVolume("k8s", OnDeleteDelete), testVolume("k8s/pvc-1", OnDeleteDelete)
		writeOldRecord(t, sh, inner)
		mustWrite(t, filepath.Join(sh.Path(), "k8s", "pvc-1", "data.db"), "inner's data")
		writeOldRecord(t, sh, outer)
		mustWrite(t, filepath.Join(sh.Path(), "k8s", "outer.txt"), "outer's data")

		done, _, err := Dispose(sh, outer, "", time.Now())
		if err != nil || done != DeletedKeptNested {
			t.Fatalf("Dispose(outer) = %q, %v; want %q", done, err, DeletedKeptNested)
		}
		if readFile(t, filepath.Join(sh.Path(), "k8s", "pvc-1", "data.db")) != "inner's data" {
			t.Error("the inner volume's data changed")
		}
		if exists(t, filepath.Join(sh.Path(), "k8s", "outer.txt")) {
			t.Error("the outer volume's data was kept")
		}
		if _, ok := readShareRecord(t, sh, "k8s"); ok {
			t.Error("the outer volume's record was kept")
		}
		// The outer directory is now a parent, removed with the inner volume.
		if done, _, err := Dispose(sh, inner, "", time.Now()); err != nil || done != Deleted {
			t.Fatalf("Dispose(inner) = %q, %v", done, err)
		}
		if exists(t, filepath.Join(sh.Path(), "k8s")) {
			t.Error("the former outer directory outlived its last volume")
		}
	})
	t.Run("inner deleted first", func(t *testing.T) {
		sh := acquireTestShare(t)
		outer, inner := testVolume("k8s", OnDeleteDelete), testVolume("k8s/pvc-1", OnDeleteDelete)
		recFd, err := sh.RecordDirFd()
		if err != nil {
			t.Fatal(err)
		}
		// The inner volume made k8s, with a parent marker; the outer one was
		// then created over the existing directory.
		mustMkdirAll(t, filepath.Join(sh.Path(), "k8s", "pvc-1"))
		if err := CreateParentMarker(recFd, "k8s"); err != nil {
			t.Fatal(err)
		}
		writeOldRecord(t, sh, inner)
		writeOldRecord(t, sh, outer)

		if _, _, err := Dispose(sh, inner, "", time.Now()); err != nil {
			t.Fatal(err)
		}
		if !exists(t, filepath.Join(sh.Path(), "k8s")) {
			t.Error("deleting the inner volume removed the outer volume's directory")
		}
	})
}

// writeOldRecord writes vol's record as the code before nesting checks did:
// a record without markers.
func writeOldRecord(t *testing.T, sh *Share, vol Volume) {
	t.Helper()
	recFd, err := sh.RecordDirFd()
	if err != nil {
		t.Fatal(err)
	}
	if err := CreateRecord(recFd, vol.SubDir, testRecord(vol)); err != nil {
		t.Fatal(err)
	}
}

// Archiving an outer volume used to rename the directory of a volume nested
// in it (by a driver without nesting checks) along with it, away from its
// bound PV. The archive is now refused, changing nothing, until the inner
// volume is gone.
func TestRegressionArchiveKeepsNestedVolumeInPlace(t *testing.T) {
	sh := acquireTestShare(t)
	outer, inner := testVolume("k8s", OnDeleteArchive), testVolume("k8s/pvc-1", OnDeleteDelete)
	writeOldRecord(t, sh, inner)
	mustWrite(t, filepath.Join(sh.Path(), "k8s", "pvc-1", "data.db"), "inner's data")
	writeOldRecord(t, sh, outer)
	before := shareTree(t, sh)
	_, _, err := Dispose(sh, outer, "", time.Now())
	if !errors.Is(err, ErrNested) || !strings.Contains(err.Error(), "k8s/pvc-1") {
		t.Fatalf("Dispose(outer, archive) = %v, want ErrNested naming k8s/pvc-1", err)
	}
	if after := shareTree(t, sh); !slices.Equal(before, after) {
		t.Errorf("a refused archive changed the share:\nbefore %q\nafter  %q", before, after)
	}
	if _, _, err := Dispose(sh, inner, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	if done, _, err := Dispose(sh, outer, "", time.Now()); err != nil || done != Archived {
		t.Fatalf("Dispose(outer) once the inner volume is gone = %q, %v", done, err)
	}
}
