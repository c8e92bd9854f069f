package nfs

import (
	"bytes"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTakeInventory(t *testing.T) {
	sh := acquireTestShare(t)
	for _, sub := range []string{"ns/a", "team/v", "kept"} {
		mustProvision(t, sh, testVolume(sub, OnDeleteDelete))
	}
	retained := testVolume("ns/r", OnDeleteRetain)
	mustProvision(t, sh, retained)
	if _, _, err := Dispose(sh, retained, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	// A record whose directory never appeared, and one whose directory an
	// admin removed by hand.
	recFd, err := sh.RecordDirFd()
	if err != nil {
		t.Fatal(err)
	}
	if err := CreateRecord(recFd, "never", testRecord(testVolume("never", OnDeleteDelete))); err != nil {
		t.Fatal(err)
	}
	mustProvision(t, sh, testVolume("removed", OnDeleteDelete))
	if err := removeDirForTest(sh, "removed"); err != nil {
		t.Fatal(err)
	}
	// Orphans, and what is not one.
	mustMkdirAll(t, filepath.Join(sh.Path(), "junk", "deeper"))
	mustMkdirAll(t, filepath.Join(sh.Path(), "ns", "stray"))
	mustMkdirAll(t, filepath.Join(sh.Path(), ArchivePrefix+"old-20260101T000000Z-00000000", "x"))
	mustWrite(t, filepath.Join(sh.Path(), "a-file"), "not a directory")
	before := shareTree(t, sh)

	inv, err := InspectPath(sh.Path())
	if err != nil {
		t.Fatal(err)
	}
	var vols, stale []string
	for _, r := range inv.Volumes {
		vols = append(vols, r.SubDir+":"+recordState(r.Record))
	}
	for _, r := range inv.StaleRecords {
		stale = append(stale, r.SubDir)
	}
	if want := []string{"kept:live", "ns/a:live", "ns/r:retained (tombstone)", "team/v:live"}; !slices.Equal(vols, want) {
		t.Errorf("volumes = %q, want %q", vols, want)
	}
	if want := []string{"never", "removed"}; !slices.Equal(stale, want) {
		t.Errorf("stale records = %q, want %q", stale, want)
	}
	if want := []string{"junk", "ns/stray"}; !slices.Equal(inv.Orphans, want) {
		t.Errorf("orphans = %q, want %q", inv.Orphans, want)
	}
	if after := shareTree(t, sh); !slices.Equal(before, after) {
		t.Errorf("the inventory changed the share:\nbefore %q\nafter  %q", before, after)
	}
	var out bytes.Buffer
	if err := inv.Print(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"VOLUMES (4)", "STALE RECORDS", "never", "ORPHANED DIRECTORIES", "junk", "retained"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printed inventory lacks %q:\n%s", want, out.String())
		}
	}
}

func removeDirForTest(sh *Share, rel string) error {
	parent, base := splitParent(rel)
	pfd, err := openParent(sh.RootFd(), parent)
	if err != nil {
		return err
	}
	defer closeUnlessRoot(pfd, sh.RootFd())
	return RemoveTreeAt(pfd, base)
}
