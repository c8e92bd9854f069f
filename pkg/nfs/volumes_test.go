package nfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func testVolume(subDir string, policy OnDelete) Volume {
	return Volume{Server: testServer, Share: testShare, SubDir: subDir, OnDelete: policy}
}

func testRecord(vol Volume) Record {
	return Record{Name: filepath.Base(vol.SubDir), VolumeID: vol.ID(), CapacityBytes: 1 << 30}
}

// sameVolume is the compatible func the controller uses, reduced to the ID.
func sameVolume(want Record) func(Record) error {
	return func(stored Record) error {
		if stored.VolumeID != want.VolumeID {
			return errConflictTest
		}
		return nil
	}
}

var errConflictTest = errors.New("conflict")

func mustProvision(t *testing.T, sh *Share, vol Volume) Record {
	t.Helper()
	rec := testRecord(vol)
	stored, err := Provision(sh, vol, rec, ProvisionOptions{Compatible: sameVolume(rec)})
	if err != nil {
		t.Fatalf("Provision(%s): %v", vol.SubDir, err)
	}
	return stored
}

func readShareRecord(t *testing.T, sh *Share, subDir string) (Record, bool) {
	t.Helper()
	fd, err := sh.RecordDirFd()
	if err != nil {
		t.Fatal(err)
	}
	rec, ok, err := ReadRecord(fd, subDir)
	if err != nil {
		t.Fatalf("ReadRecord(%s): %v", subDir, err)
	}
	return rec, ok
}

func TestProvisionCreatesDirAndRecord(t *testing.T) {
	for _, subDir := range []string{"pvc-1", "team-a/app/pvc-2"} {
		t.Run(subDir, func(t *testing.T) {
			sh := acquireTestShare(t)
			vol := testVolume(subDir, OnDeleteDelete)
			rec := testRecord(vol)
			called := false
			stored, err := Provision(sh, vol, rec, ProvisionOptions{Compatible: func(Record) error { called = true; return nil }})
			if err != nil {
				t.Fatalf("Provision: %v", err)
			}
			if called {
				t.Error("compatible was called although no record existed")
			}
			if stored.Name != rec.Name || stored.VolumeID != rec.VolumeID || stored.CapacityBytes != rec.CapacityBytes {
				t.Errorf("Provision returned %+v, want %+v", stored, rec)
			}
			fi, err := os.Lstat(filepath.Join(sh.Path(), subDir))
			if err != nil || !fi.IsDir() {
				t.Fatalf("volume directory: %v, %v", fi, err)
			}
			got, ok := readShareRecord(t, sh, subDir)
			if !ok || got.VolumeID != vol.ID() || got.Name != rec.Name || got.Version != 1 {
				t.Errorf("stored record = %+v, %v", got, ok)
			}
			if ok, err := DirExists(sh, subDir); !ok || err != nil {
				t.Errorf("DirExists = %v, %v", ok, err)
			}
		})
	}
}

func TestProvisionPermIgnoresUmask(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	tests := []struct {
		name string
		perm *uint32
		want os.FileMode
	}{
		{"0777", ptr(uint32(0o777)), 0o777},
		{"0775", ptr(uint32(0o775)), 0o775},
		{"0750", ptr(uint32(0o750)), 0o750},
		{"0700", ptr(uint32(0o700)), 0o700},
		{"nil keeps umask", nil, 0o700},
	}
	sh := acquireTestShare(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vol := testVolume(fmt.Sprintf("ns/perm-%d", i), OnDeleteDelete)
			rec := testRecord(vol)
			if _, err := Provision(sh, vol, rec, ProvisionOptions{Perm: tt.perm, Compatible: sameVolume(rec)}); err != nil {
				t.Fatalf("Provision: %v", err)
			}
			fi, err := os.Lstat(filepath.Join(sh.Path(), vol.SubDir))
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != tt.want {
				t.Errorf("mode = %o, want %o", got, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestProvisionIdempotent(t *testing.T) {
	sh := acquireTestShare(t)
	vol := testVolume("ns/pvc-1", OnDeleteRetain)
	rec := testRecord(vol)
	perm := uint32(0o770)
	first, err := Provision(sh, vol, rec, ProvisionOptions{Perm: &perm, Compatible: sameVolume(rec)})
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(sh.Path(), "ns", "pvc-1", "data"), "user data")

	calls := 0
	second, err := Provision(sh, vol, rec, ProvisionOptions{Perm: &perm, Compatible: func(stored Record) error {
		calls++
		return sameVolume(rec)(stored)
	}})
	if err != nil {
		t.Fatalf("second Provision: %v", err)
	}
	if calls != 1 {
		t.Errorf("compatible called %d times, want 1", calls)
	}
	if second.Name != first.Name || second.VolumeID != first.VolumeID || second.CapacityBytes != first.CapacityBytes {
		t.Errorf("retry returned %+v, first call %+v", second, first)
	}
	if got := readFile(t, filepath.Join(sh.Path(), "ns", "pvc-1", "data")); got != "user data" {
		t.Errorf("a retry changed the volume's data: %q", got)
	}
}

func TestProvisionFinishesAfterCrash(t *testing.T) {
	// A controller died after claiming the record and before mkdir: the
	// retry finds the record, accepts it and makes the directory.
	sh := acquireTestShare(t)
	vol := testVolume("ns/pvc-crash", OnDeleteDelete)
	rec := testRecord(vol)
	fd, err := sh.RecordDirFd()
	if err != nil {
		t.Fatal(err)
	}
	if err := CreateRecord(fd, vol.SubDir, rec); err != nil {
		t.Fatal(err)
	}
	if _, err := Provision(sh, vol, rec, ProvisionOptions{Compatible: sameVolume(rec)}); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if ok, err := DirExists(sh, vol.SubDir); !ok || err != nil {
		t.Errorf("DirExists = %v, %v", ok, err)
	}
}

func TestProvisionConflict(t *testing.T) {
	sh := acquireTestShare(t)
	owner := testVolume("shared/dir", OnDeleteDelete)
	ownerRec := testRecord(owner)
	ownerRec.Name = "pvc-owner"
	if _, err := Provision(sh, owner, ownerRec, ProvisionOptions{Compatible: sameVolume(ownerRec)}); err != nil {
		t.Fatal(err)
	}
	other := owner
	other.OnDelete = OnDeleteRetain
	otherRec := testRecord(other)
	otherRec.Name = "pvc-other"
	stored, err := Provision(sh, other, otherRec, ProvisionOptions{Compatible: sameVolume(otherRec)})
	if !errors.Is(err, errConflictTest) {
		t.Fatalf("Provision of a taken subDir = %v, want the compatible func's error", err)
	}
	if stored.Name != "pvc-owner" || stored.VolumeID != owner.ID() {
		t.Errorf("conflict returned %+v, want the owner's record", stored)
	}
	if got, _ := readShareRecord(t, sh, "shared/dir"); got.Name != "pvc-owner" {
		t.Errorf("the owner's record was replaced by %+v", got)
	}
}

func TestProvisionRefusesShareRoot(t *testing.T) {
	sh := acquireTestShare(t)
	vol := testVolume("", OnDeleteDelete)
	_, err := Provision(sh, vol, testRecord(vol), ProvisionOptions{Compatible: func(Record) error { return nil }})
	if err == nil || !strings.Contains(err.Error(), "share root") {
		t.Fatalf("Provision of the share root = %v", err)
	}
	if _, ok := readShareRecord(t, sh, ""); ok {
		t.Error("a record was written for the share root")
	}
}

func TestProvisionRefusesSymlinkedParent(t *testing.T) {
	sh := acquireTestShare(t)
	outside := t.TempDir()
	mustSymlink(t, outside, filepath.Join(sh.Path(), "ns"))
	vol := testVolume("ns/pvc-1", OnDeleteDelete)
	rec := testRecord(vol)
	_, err := Provision(sh, vol, rec, ProvisionOptions{Compatible: sameVolume(rec)})
	if !errors.Is(err, ErrSymlink) {
		t.Fatalf("Provision through a symlink = %v, want ErrSymlink", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("Provision created %v outside the share", entries)
	}
}

func TestDisposeDelete(t *testing.T) {
	sh := acquireTestShare(t)
	vol := testVolume("team-a/app/pvc-1", OnDeleteDelete)
	mustProvision(t, sh, vol)
	buildTree(t, filepath.Join(sh.Path(), vol.SubDir))
	neighbour := testVolume("team-b/pvc-9", OnDeleteDelete)
	mustProvision(t, sh, neighbour)

	done, archivedAs, err := Dispose(sh, vol, "", time.Now())
	if err != nil {
		t.Fatalf("Dispose: %v", err)
	}
	if done != Deleted || archivedAs != "" {
		t.Errorf("Dispose = %q, %q; want %q", done, archivedAs, Deleted)
	}
	for _, p := range []string{"team-a/app/pvc-1", "team-a/app", "team-a"} {
		if exists(t, filepath.Join(sh.Path(), p)) {
			t.Errorf("%s still exists", p)
		}
	}
	if _, ok := readShareRecord(t, sh, vol.SubDir); ok {
		t.Error("the record survived the deletion")
	}
	if ok, _ := DirExists(sh, neighbour.SubDir); !ok {
		t.Error("a neighbouring volume was removed")
	}
	if _, ok := readShareRecord(t, sh, neighbour.SubDir); !ok {
		t.Error("a neighbouring volume's record was removed")
	}
	// A second DeleteVolume is a no-op.
	done, _, err = Dispose(sh, vol, "", time.Now())
	if err != nil || done != NotOurs {
		t.Errorf("second Dispose = %q, %v; want %q", done, err, NotOurs)
	}
}

func TestDisposeDeleteKeepsNonEmptyParents(t *testing.T) {
	sh := acquireTestShare(t)
	a := testVolume("ns/pvc-a", OnDeleteDelete)
	b := testVolume("ns/pvc-b", OnDeleteDelete)
	mustProvision(t, sh, a)
	mustProvision(t, sh, b)
	if done, _, err := Dispose(sh, a, "", time.Now()); err != nil || done != Deleted {
		t.Fatalf("Dispose = %q, %v", done, err)
	}
	if !exists(t, filepath.Join(sh.Path(), "ns", "pvc-b")) {
		t.Error("the sibling volume was removed")
	}
	if exists(t, filepath.Join(sh.Path(), "ns", "pvc-a")) {
		t.Error("the volume was not removed")
	}
}

func TestDisposeDeleteDoesNotFollowSymlinks(t *testing.T) {
	sh := acquireTestShare(t)
	outside := t.TempDir()
	mustWrite(t, filepath.Join(outside, "precious"), "keep")
	vol := testVolume("pvc-1", OnDeleteDelete)
	mustProvision(t, sh, vol)
	mustSymlink(t, outside, filepath.Join(sh.Path(), "pvc-1", "escape"))
	mustSymlink(t, filepath.Join(outside, "precious"), filepath.Join(sh.Path(), "pvc-1", "file-escape"))
	if done, _, err := Dispose(sh, vol, "", time.Now()); err != nil || done != Deleted {
		t.Fatalf("Dispose = %q, %v", done, err)
	}
	if got := readFile(t, filepath.Join(outside, "precious")); got != "keep" {
		t.Errorf("outside file changed: %q", got)
	}
}

func TestDisposeDeleteBusy(t *testing.T) {
	sh := acquireTestShare(t)
	vol := testVolume("ns/pvc-1", OnDeleteDelete)
	mustProvision(t, sh, vol)
	busyFile := filepath.Join(sh.Path(), "ns", "pvc-1", "sub", ".nfs000000000000abcd00000001")
	mustWrite(t, busyFile, "open on another node")
	mustWrite(t, filepath.Join(sh.Path(), "ns", "pvc-1", "other"), "x")

	_, _, err := Dispose(sh, vol, "", time.Now())
	var busy *BusyError
	if !errors.Is(err, ErrBusy) || !errors.As(err, &busy) {
		t.Fatalf("Dispose with a busy file = %v, want a BusyError", err)
	}
	if len(busy.Files) != 1 || !strings.HasSuffix(busy.Files[0], "sub/.nfs000000000000abcd00000001") {
		t.Errorf("busy files = %q", busy.Files)
	}
	if _, ok := readShareRecord(t, sh, vol.SubDir); !ok {
		t.Error("the record was removed although the directory was not")
	}
	if exists(t, filepath.Join(sh.Path(), "ns", "pvc-1", "other")) {
		t.Error("the other files were kept")
	}
	// The other node closes the file; DeleteVolume is retried.
	if err := os.Remove(busyFile); err != nil {
		t.Fatal(err)
	}
	if done, _, err := Dispose(sh, vol, "", time.Now()); err != nil || done != Deleted {
		t.Fatalf("retried Dispose = %q, %v", done, err)
	}
	if exists(t, filepath.Join(sh.Path(), "ns")) {
		t.Error("the template parent survived the retry")
	}
}

func TestDisposeRetain(t *testing.T) {
	sh := acquireTestShare(t)
	vol := testVolume("ns/pvc-1", OnDeleteRetain)
	mustProvision(t, sh, vol)
	mustWrite(t, filepath.Join(sh.Path(), "ns", "pvc-1", "data"), "keep")
	done, archivedAs, err := Dispose(sh, vol, "", time.Now())
	if err != nil || done != Retained || archivedAs != "" {
		t.Fatalf("Dispose = %q, %q, %v; want %q", done, archivedAs, err, Retained)
	}
	if got := readFile(t, filepath.Join(sh.Path(), "ns", "pvc-1", "data")); got != "keep" {
		t.Errorf("retained data = %q", got)
	}
	if rec, ok := readShareRecord(t, sh, vol.SubDir); !ok || !rec.Tombstone || rec.VolumeID != vol.ID() {
		t.Errorf("record after retain = %+v, %v; want a tombstone of the volume", rec, ok)
	}
	if done, _, err := Dispose(sh, vol, "", time.Now()); err != nil || done != Retained {
		t.Errorf("retried Dispose = %q, %v; want %q", done, err, Retained)
	}
	// The tombstone is not the volume of a later handle that says delete:
	// it leaves the directory alone.
	vol.OnDelete = OnDeleteDelete
	if done, _, err := Dispose(sh, vol, "", time.Now()); err != nil || done != OtherOwner {
		t.Errorf("Dispose of a retained volume = %q, %v; want %q", done, err, OtherOwner)
	}
	if !exists(t, filepath.Join(sh.Path(), "ns", "pvc-1", "data")) {
		t.Error("retained data was deleted later")
	}
}

var archiveRE = regexp.MustCompile(`^archived-(.*)-(\d{8}T\d{6}Z)-([0-9a-f]{8})$`)

func TestDisposeArchive(t *testing.T) {
	sh := acquireTestShare(t)
	vol := testVolume("ns/pvc-1", OnDeleteArchive)
	mustProvision(t, sh, vol)
	mustWrite(t, filepath.Join(sh.Path(), "ns", "pvc-1", "dir", "data"), "archived data")
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600))

	done, archivedAs, err := Dispose(sh, vol, "", now)
	if err != nil || done != Archived {
		t.Fatalf("Dispose = %q, %v; want %q", done, err, Archived)
	}
	dir, base := filepath.Split(archivedAs)
	if dir != "ns/" {
		t.Errorf("archived as %q, want it in the volume's parent ns/", archivedAs)
	}
	m := archiveRE.FindStringSubmatch(base)
	if m == nil || m[1] != "pvc-1" || m[2] != "20260304T040607Z" {
		t.Errorf("archive name %q, want archived-pvc-1-20260304T040607Z-<hex>", base)
	}
	if got := readFile(t, filepath.Join(sh.Path(), archivedAs, "dir", "data")); got != "archived data" {
		t.Errorf("archived data = %q", got)
	}
	if exists(t, filepath.Join(sh.Path(), "ns", "pvc-1")) {
		t.Error("the original directory still exists")
	}
	if _, ok := readShareRecord(t, sh, vol.SubDir); ok {
		t.Error("the record survived")
	}
}

func TestDisposeArchiveTwice(t *testing.T) {
	sh := acquireTestShare(t)
	vol := testVolume("pvc-1", OnDeleteArchive)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var archives []string
	for i, content := range []string{"first life", "second life"} {
		mustProvision(t, sh, vol)
		mustWrite(t, filepath.Join(sh.Path(), "pvc-1", "data"), content)
		done, archivedAs, err := Dispose(sh, vol, "", now) // the same second
		if err != nil || done != Archived {
			t.Fatalf("Dispose #%d = %q, %v", i+1, done, err)
		}
		archives = append(archives, archivedAs)
	}
	if archives[0] == archives[1] {
		t.Fatalf("both archives are named %q", archives[0])
	}
	for i, content := range []string{"first life", "second life"} {
		if got := readFile(t, filepath.Join(sh.Path(), archives[i], "data")); got != content {
			t.Errorf("archive %s holds %q, want %q", archives[i], got, content)
		}
	}
}

func TestDisposeArchiveOfMissingDir(t *testing.T) {
	// The record exists but the directory is gone (removed by hand): the
	// record is cleaned up and nothing is reported as archived.
	sh := acquireTestShare(t)
	vol := testVolume("pvc-gone", OnDeleteArchive)
	mustProvision(t, sh, vol)
	if err := os.Remove(filepath.Join(sh.Path(), "pvc-gone")); err != nil {
		t.Fatal(err)
	}
	_, archivedAs, err := Dispose(sh, vol, "", time.Now())
	if err != nil || archivedAs != "" {
		t.Fatalf("Dispose = %q, %v", archivedAs, err)
	}
	if _, ok := readShareRecord(t, sh, vol.SubDir); ok {
		t.Error("the record survived")
	}
}

func TestDisposeWithoutRecord(t *testing.T) {
	for _, policy := range []OnDelete{OnDeleteDelete, OnDeleteArchive, OnDeleteRetain} {
		t.Run(string(policy), func(t *testing.T) {
			sh := acquireTestShare(t)
			// A static volume: a directory this driver never created.
			mustWrite(t, filepath.Join(sh.Path(), "static", "data"), "not ours")
			done, archivedAs, err := Dispose(sh, testVolume("static", policy), "", time.Now())
			if err != nil || done != NotOurs || archivedAs != "" {
				t.Fatalf("Dispose = %q, %q, %v; want %q", done, archivedAs, err, NotOurs)
			}
			if got := readFile(t, filepath.Join(sh.Path(), "static", "data")); got != "not ours" {
				t.Errorf("static data = %q", got)
			}
			entries, err := os.ReadDir(sh.Path())
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ArchivePrefix) {
					t.Errorf("an archive %s was made", e.Name())
				}
			}
		})
	}
}

func TestDisposeShareRoot(t *testing.T) {
	for _, policy := range []OnDelete{OnDeleteDelete, OnDeleteArchive, OnDeleteRetain} {
		t.Run(string(policy), func(t *testing.T) {
			sh := acquireTestShare(t)
			mustWrite(t, filepath.Join(sh.Path(), "data"), "share data")
			done, archivedAs, err := Dispose(sh, testVolume("", policy), "", time.Now())
			if err != nil || done != ShareRootNo || archivedAs != "" {
				t.Fatalf("Dispose = %q, %q, %v; want %q", done, archivedAs, err, ShareRootNo)
			}
			if got := readFile(t, filepath.Join(sh.Path(), "data")); got != "share data" {
				t.Errorf("share data = %q", got)
			}
		})
	}
}

func TestDisposeCorruptRecord(t *testing.T) {
	sh := acquireTestShare(t)
	vol := testVolume("pvc-1", OnDeleteDelete)
	mustWrite(t, filepath.Join(sh.Path(), "pvc-1", "data"), "x")
	if _, err := sh.RecordDirFd(); err != nil {
		t.Fatal(err)
	}
	mustSymlink(t, "garbage", filepath.Join(sh.Path(), RecordDir, recordKey("pvc-1")))
	if _, _, err := Dispose(sh, vol, "", time.Now()); err == nil {
		t.Fatal("Dispose with a corrupt record succeeded")
	}
	if !exists(t, filepath.Join(sh.Path(), "pvc-1", "data")) {
		t.Error("data was removed on a corrupt record")
	}
}

func TestArchiveName(t *testing.T) {
	now := time.Date(2026, 12, 31, 23, 59, 58, 0, time.FixedZone("PST", -8*3600))
	const ts = "20270101T075958Z"
	tests := []struct {
		name, base string
		wantBase   string
	}{
		{"short", "pvc-1", "pvc-1"},
		{"with dots", "a.b..c", "a.b..c"},
		{"at the limit", strings.Repeat("b", MaxComponentLen-len(ArchivePrefix)-26), strings.Repeat("b", MaxComponentLen-len(ArchivePrefix)-26)},
		{"one over", strings.Repeat("c", MaxComponentLen-len(ArchivePrefix)-25), strings.Repeat("c", MaxComponentLen-len(ArchivePrefix)-26)},
		{"255 bytes", strings.Repeat("x", MaxComponentLen), strings.Repeat("x", MaxComponentLen-len(ArchivePrefix)-26)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ArchiveName(tt.base, now)
			if len(got) > MaxComponentLen {
				t.Errorf("ArchiveName is %d bytes, over %d", len(got), MaxComponentLen)
			}
			if err := ValidateComponent(got); err != nil {
				t.Errorf("ArchiveName %q is not a valid component: %v", got, err)
			}
			m := archiveRE.FindStringSubmatch(got)
			if m == nil {
				t.Fatalf("ArchiveName = %q, want archived-<base>-<UTC time>-<hex>", got)
			}
			if m[1] != tt.wantBase || m[2] != ts {
				t.Errorf("ArchiveName = %q: base %q (want %q), time %q (want %q)", got, m[1], tt.wantBase, m[2], ts)
			}
		})
	}
	if a, b := ArchiveName("x", now), ArchiveName("x", now); a == b {
		t.Errorf("two archive names in the same second are equal: %q", a)
	}
}

func TestDirExists(t *testing.T) {
	sh := acquireTestShare(t)
	outside := t.TempDir()
	mustMkdirAll(t, filepath.Join(sh.Path(), "a", "b"))
	mustWrite(t, filepath.Join(sh.Path(), "file"), "x")
	mustSymlink(t, outside, filepath.Join(sh.Path(), "link"))
	mustSymlink(t, "a", filepath.Join(sh.Path(), "rel-link"))
	tests := []struct {
		rel  string
		want bool
	}{
		{"", true},
		{"a", true},
		{"a/b", true},
		{"a/missing", false},
		{"missing/b", false},
		{"file", false},
		{"link", false},
		{"rel-link/b", false},
	}
	for _, tt := range tests {
		got, err := DirExists(sh, tt.rel)
		if err != nil || got != tt.want {
			t.Errorf("DirExists(%q) = %v, %v; want %v", tt.rel, got, err, tt.want)
		}
	}
}

func TestProvisionAndDisposeRefuseSymlinkedMetadataDir(t *testing.T) {
	sh := acquireTestShare(t)
	outside := t.TempDir()
	mustSymlink(t, outside, filepath.Join(sh.Path(), MetadataDirName))
	mustWrite(t, filepath.Join(sh.Path(), "pvc-1", "data"), "x")
	vol := testVolume("pvc-1", OnDeleteDelete)
	rec := testRecord(vol)
	if _, err := Provision(sh, vol, rec, ProvisionOptions{Compatible: sameVolume(rec)}); !errors.Is(err, ErrSymlink) {
		t.Errorf("Provision with a symlinked %s = %v, want ErrSymlink", MetadataDirName, err)
	}
	if _, _, err := Dispose(sh, vol, "", time.Now()); !errors.Is(err, ErrSymlink) {
		t.Errorf("Dispose with a symlinked %s = %v, want ErrSymlink", MetadataDirName, err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("records were written outside the share: %v", entries)
	}
	if !exists(t, filepath.Join(sh.Path(), "pvc-1", "data")) {
		t.Error("the volume's data was removed")
	}
}

func TestDisposeRefusesSymlinkedParent(t *testing.T) {
	for _, policy := range []OnDelete{OnDeleteDelete, OnDeleteArchive} {
		t.Run(string(policy), func(t *testing.T) {
			sh := acquireTestShare(t)
			vol := testVolume("ns/pvc-1", policy)
			mustProvision(t, sh, vol)
			// The parent is swapped for a symlink to a look-alike outside.
			outside := t.TempDir()
			mustWrite(t, filepath.Join(outside, "pvc-1", "data"), "outside")
			if err := os.Rename(filepath.Join(sh.Path(), "ns"), filepath.Join(sh.Path(), "ns.moved")); err != nil {
				t.Fatal(err)
			}
			mustSymlink(t, outside, filepath.Join(sh.Path(), "ns"))
			if _, _, err := Dispose(sh, vol, "", time.Now()); !errors.Is(err, ErrSymlink) {
				t.Errorf("Dispose through a symlinked parent = %v, want ErrSymlink", err)
			}
			if got := readFile(t, filepath.Join(outside, "pvc-1", "data")); got != "outside" {
				t.Errorf("outside data = %q", got)
			}
			if entries, _ := os.ReadDir(outside); len(entries) != 1 {
				t.Errorf("outside directory changed: %v", entries)
			}
			if _, ok := readShareRecord(t, sh, vol.SubDir); !ok {
				t.Error("the record was removed although nothing was disposed of")
			}
		})
	}
}

// The walks start from the share root's fd without dup(2)ing it; none of
// them may close it, whatever path they take.
func TestShareRootFdSurvivesEveryWalk(t *testing.T) {
	sh := acquireTestShare(t)
	root := sh.RootFd()
	alive := func(step string) {
		t.Helper()
		if _, err := unix.FcntlInt(uintptr(root), unix.F_GETFD, 0); err != nil {
			t.Fatalf("after %s the share root fd %d is closed: %v", step, root, err)
		}
	}
	for _, subDir := range []string{"top", "ns/nested", "a/b/c"} {
		for _, policy := range []OnDelete{OnDeleteDelete, OnDeleteArchive, OnDeleteRetain} {
			vol := testVolume(subDir, policy)
			mustProvision(t, sh, vol)
			alive("Provision " + subDir)
			if _, _, err := Dispose(sh, vol, "", time.Now()); err != nil {
				t.Fatal(err)
			}
			alive("Dispose " + subDir + " " + string(policy))
		}
		if _, err := ExistingDepth(root, subDir); err != nil {
			t.Fatal(err)
		}
		alive("ExistingDepth " + subDir)
		if _, err := MkdirAllBeneathNoFd(root, subDir, 0o755); err != nil {
			t.Fatal(err)
		}
		alive("MkdirAllBeneathNoFd " + subDir)
		recFd, err := sh.RecordDirFd()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := removeVolumeDir(root, recFd, subDir); err != nil {
			t.Fatal(err)
		}
		alive("removeVolumeDir " + subDir)
	}
	if _, err := ExistingDepth(root, "missing/deeper"); err != nil {
		t.Fatal(err)
	}
	alive("ExistingDepth of a missing path")
}
