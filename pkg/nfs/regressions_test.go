// Regression tests for ownership and input-safety bugs found in review. Each
// comment says what used to happen; the test asserts it no longer does.
package nfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// FakeMounter "mounts" with a symlink, and ShareMounts used to open its mount
// point with O_NOFOLLOW: every Acquire over a FakeMounter failed with ENOTDIR.
func TestRegressionFakeMounterBacksShareMounts(t *testing.T) {
	export := t.TempDir()
	m := NewFakeMounter(map[string]string{"h:/s": export})
	sm, err := NewShareMounts(m, filepath.Join(t.TempDir(), "shares"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	defer sm.Close()
	sh, err := sm.Acquire(context.Background(), "h", "/s", nil)
	if err != nil {
		t.Fatalf("Acquire over FakeMounter: %v", err)
	}
	defer sh.Release()
	vol := Volume{Server: "h", Share: "/s", SubDir: "pvc-1", OnDelete: OnDeleteDelete}
	if _, err := Provision(sh, vol, Record{Name: "pvc-1", VolumeID: vol.ID()}, ProvisionOptions{Compatible: func(Record) error { return nil }}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(export, "pvc-1")); err != nil {
		t.Errorf("the volume is not in the export: %v", err)
	}
}

// ValidateServer used to accept any IPv6 zone: netip.ParseAddr takes
// everything after '%' as the zone, including ']', ':', '/', spaces, commas,
// '#' and control characters.
func TestRegressionValidateServerZone(t *testing.T) {
	for _, s := range []string{
		"[fe80::1%]:/etc]",
		"[fe80::1%eth0 x,y]",
		"[fe80::1%\x01\n]",
		"[fe80::1%\x00]",
		"[::1%#]",
	} {
		if err := ValidateServer(s); err == nil {
			t.Errorf("ValidateServer(%q) = nil, want an error", s)
		}
	}
	const id = "v1#delete#[fe80::1%25]:/etc]#/srv#pvc-1#"
	if v, err := ParseVolumeID(id); err == nil {
		t.Errorf("ParseVolumeID(%q) = %+v, Source() %q; want an error", id, v, v.Source())
	}
}

// Dispose used to trust any record for the subdirectory, whatever volume it
// belonged to: a hand-written handle that named a retained volume's directory
// with onDelete=delete destroyed it.
func TestRegressionDisposeIgnoresRecordVolumeID(t *testing.T) {
	sh := acquireTestShare(t)
	owner := testVolume("team-a/db", OnDeleteRetain)
	mustProvision(t, sh, owner)
	mustWrite(t, filepath.Join(sh.Path(), "team-a", "db", "data"), "precious")

	forged := owner
	forged.OnDelete = OnDeleteDelete // a different handle: v1#delete#...
	done, _, err := Dispose(sh, forged, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if done != OtherOwner {
		t.Errorf("Dispose(%s) of a directory recorded for %s = %q, want %q", forged.ID(), owner.ID(), done, OtherOwner)
	}
	if !exists(t, filepath.Join(sh.Path(), "team-a", "db", "data")) {
		t.Error("the retained volume's data was deleted")
	}
}

// A directory that existed before its volume used to be deleted with the
// volume, data the driver never created included. Now it is adopted only when
// the class allows it (adoptExisting): the volume works, and its delete
// policy leaves the data alone.
func TestRegressionProvisionAdoptsExistingDirectory(t *testing.T) {
	sh := acquireTestShare(t)
	mustWrite(t, filepath.Join(sh.Path(), "team-a", "data", "old.db"), "pre-existing")
	vol := testVolume("team-a/data", OnDeleteDelete)
	rec := testRecord(vol)
	stored, err := Provision(sh, vol, rec, ProvisionOptions{AdoptExisting: true, Compatible: sameVolume(rec)})
	if err != nil {
		t.Fatal(err)
	}
	if !stored.Adopted {
		t.Errorf("record %+v is not marked adopted", stored)
	}
	done, _, err := Dispose(sh, vol, "", time.Now())
	if err != nil || done != Adopted {
		t.Errorf("Dispose = %q, %v; want %q", done, err, Adopted)
	}
	if !exists(t, filepath.Join(sh.Path(), "team-a", "data", "old.db")) {
		t.Error("the pre-existing data was deleted")
	}
}

// Provision used to return the caller's record (Version 0) on the first call
// and the stored one (Version 1) on a retry.
func TestRegressionProvisionRecordVersion(t *testing.T) {
	sh := acquireTestShare(t)
	vol := testVolume("pvc-1", OnDeleteDelete)
	rec := testRecord(vol)
	first, err := Provision(sh, vol, rec, ProvisionOptions{Compatible: sameVolume(rec)})
	if err != nil {
		t.Fatal(err)
	}
	second, err := Provision(sh, vol, rec, ProvisionOptions{Compatible: sameVolume(rec)})
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Errorf("first call returned %+v, retry %+v", first, second)
	}
}

// ArchiveName used to truncate the base by bytes and could cut a UTF-8
// sequence.
func TestRegressionArchiveNameSplitsUTF8(t *testing.T) {
	base := strings.Repeat("a", MaxComponentLen-len(ArchivePrefix)-26-1) + "é"
	if got := ArchiveName(base, time.Now()); !utf8.ValidString(got) {
		t.Errorf("ArchiveName(%q...) = %q is not valid UTF-8", base[:10], got)
	}
}

// RemoveEmptyParents used to remove every empty parent, including ones the
// admin made: MkdirAllBeneath reported which ones the driver created, but
// Provision dropped that list.
func TestRegressionDisposeRemovesAdminParent(t *testing.T) {
	sh := acquireTestShare(t)
	mustMkdirAll(t, filepath.Join(sh.Path(), "team-a")) // made by the admin, e.g. with a quota
	vol := testVolume("team-a/pvc-1", OnDeleteDelete)
	mustProvision(t, sh, vol)
	if _, _, err := Dispose(sh, vol, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	if !exists(t, filepath.Join(sh.Path(), "team-a")) {
		t.Error("Dispose removed team-a, which the driver did not create")
	}
}

// IsStale used to delegate to mount.IsCorruptedMnt, which looks only at a
// bare Errno or *os.PathError (no errors.As) and also counts EACCES, EIO,
// EWOULDBLOCK and ENODEV: the answer depended on wrapping, and a permission
// error that no remount repairs made the controller remount the share.
func TestRegressionIsStaleDependsOnWrapping(t *testing.T) {
	for _, errno := range []error{unix.ENOTCONN, unix.EIO, unix.EACCES} {
		bare, wrapped := IsStale(errno), IsStale(fmt.Errorf("open %s: %w", "x", errno))
		if bare != wrapped {
			t.Errorf("IsStale(%v) = %v but IsStale(wrapped %v) = %v", errno, bare, errno, wrapped)
		}
	}
	if IsStale(unix.EACCES) {
		t.Error("IsStale(EACCES) = true: a permission error triggers a remount")
	}
}
