package nfs

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSubDirOf(t *testing.T) {
	for _, tc := range []struct {
		share, path, want, err string
	}{
		{"/srv/nfs", "media", "media", ""},
		{"/srv/nfs", "team/db", "team/db", ""},
		{"/srv/nfs", "/srv/nfs/default-data-pvc-1", "default-data-pvc-1", ""},
		{"/", "/nfsdata/app", "nfsdata/app", ""},
		{"/srv/nfs", "/srv/nfsother/x", "", "outside the share"},
		{"/srv/nfs", "/srv", "", "outside the share"},
		{"/srv/nfs", "/srv/nfs", "", "root of share"},
		{"/srv/nfs", "/srv/nfs/", "", "not clean"},
		{"/srv/nfs", "/srv/nfs/a/../../etc", "", "not clean"},
		{"/srv/nfs", "", "", "root of share"},
		{"/srv/nfs", "../etc", "", `component ".."`},
		{"/srv/nfs", "a//b", "", "empty path component"},
		{"/srv/nfs", ".nfs-csi/volumes", "", "reserved"},
		{"srv", "a", "", "absolute export path"},
	} {
		got, err := SubDirOf(tc.share, tc.path)
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("SubDirOf(%q, %q) = %q, %v; want %q", tc.share, tc.path, got, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("SubDirOf(%q, %q) = %q, %v; want an error with %q", tc.share, tc.path, got, err, tc.err)
		}
	}
}

func TestRecordExisting(t *testing.T) {
	type setup func(t *testing.T, sh *Share)
	provisioned := func(subDir string) setup {
		return func(t *testing.T, sh *Share) {
			vol := testVolume(subDir, OnDeleteDelete)
			if _, err := Provision(sh, vol, testRecord(vol), ProvisionOptions{AdoptExisting: true, Compatible: sameVolume(testRecord(vol))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name    string
		subDir  string
		owned   bool
		setup   []setup
		err     string
		adopted bool
	}{
		{name: "existing directory, imported", subDir: "media", adopted: true},
		{name: "existing directory, migrated", subDir: "default-data-pvc-1", owned: true, adopted: false},
		{name: "nested existing directory", subDir: "team/db", adopted: true},
		{name: "missing directory", subDir: "nothing", err: "does not exist"},
		{name: "share root", subDir: "", err: "share root"},
		{name: "another volume's directory", subDir: "taken", setup: []setup{provisioned("taken")}, err: `belongs to volume "taken"`},
		{name: "inside another volume", subDir: "outer/inner", setup: []setup{provisioned("outer")}, err: "would lie inside the directory outer"},
		{name: "around another volume", subDir: "ns", setup: []setup{provisioned("ns/claim")}, err: "would contain the directory ns/claim"},
		{name: "through a symlink", subDir: "link/x", err: "does not exist"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sh := acquireTestShare(t)
			for _, dir := range []string{"media", "default-data-pvc-1", "team/db", "taken", "outer/inner", "ns", "elsewhere/x"} {
				mustWrite(t, filepath.Join(sh.Path(), dir, "data.txt"), "old data")
			}
			mustSymlink(t, "elsewhere", filepath.Join(sh.Path(), "link"))
			for _, s := range tc.setup {
				s(t, sh)
			}
			vol := testVolume(tc.subDir, OnDeleteRetain)
			rec := Record{Name: "imported", VolumeID: vol.ID(), ClaimNamespace: "shop", ClaimName: "data"}
			got, err := RecordExisting(sh, vol, rec, tc.owned)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("RecordExisting = %+v, %v; want an error with %q", got, err, tc.err)
				}
				if tc.subDir != "" && !strings.Contains(err.Error(), tc.subDir) {
					t.Errorf("the error does not name the path %s: %v", tc.subDir, err)
				}
				if stored, ok, _ := readTestRecord(t, sh, tc.subDir); ok && stored.Name == "imported" {
					t.Errorf("a refused import left its record: %+v", stored)
				}
				return
			}
			if err != nil {
				t.Fatalf("RecordExisting: %v", err)
			}
			stored, ok, err := readTestRecord(t, sh, tc.subDir)
			if err != nil || !ok {
				t.Fatalf("no record after RecordExisting: %v", err)
			}
			if stored.Adopted != tc.adopted || stored.Name != "imported" || stored.Claim() != "shop/data" {
				t.Errorf("record %+v, want adopted=%v, name imported, claim shop/data", stored, tc.adopted)
			}
			if readFile(t, filepath.Join(sh.Path(), tc.subDir, "data.txt")) != "old data" {
				t.Error("the data changed")
			}
			// Again: the same volume is a no-op, another name is refused.
			if _, err := RecordExisting(sh, vol, rec, tc.owned); err != nil {
				t.Errorf("second RecordExisting of the same volume: %v", err)
			}
			other := rec
			other.Name = "other"
			if _, err := RecordExisting(sh, vol, other, tc.owned); err == nil || !errors.Is(err, ErrRecordExists) {
				t.Errorf("RecordExisting under another name = %v, want ErrRecordExists", err)
			}
		})
	}
}

// An imported directory is left in place by every delete policy; a migrated
// one follows its volume's policy.
func TestRecordExistingThenDispose(t *testing.T) {
	for _, tc := range []struct {
		owned bool
		want  Disposal
	}{{false, Adopted}, {true, Deleted}} {
		sh := acquireTestShare(t)
		mustWrite(t, filepath.Join(sh.Path(), "dir", "data.txt"), "old data")
		vol := testVolume("dir", OnDeleteDelete)
		if _, err := RecordExisting(sh, vol, Record{Name: "pv", VolumeID: vol.ID()}, tc.owned); err != nil {
			t.Fatal(err)
		}
		done, _, err := Dispose(sh, vol, "", time.Now())
		if err != nil || done != tc.want {
			t.Errorf("owned=%v: Dispose = %q, %v; want %q", tc.owned, done, err, tc.want)
		}
		if left := exists(t, filepath.Join(sh.Path(), "dir", "data.txt")); left != !tc.owned {
			t.Errorf("owned=%v: data left = %v", tc.owned, left)
		}
	}
}

func readTestRecord(t *testing.T, sh *Share, subDir string) (Record, bool, error) {
	t.Helper()
	fd, err := sh.RecordDirFd()
	if err != nil {
		t.Fatal(err)
	}
	return ReadRecord(fd, subDir)
}

func TestShareAt(t *testing.T) {
	dir := t.TempDir()
	mustWrite(t, filepath.Join(dir, "media", "a"), "x")
	sh, closeShare, err := ShareAt(dir, testServer+":"+testShare)
	if err != nil {
		t.Fatal(err)
	}
	defer closeShare()
	vol := testVolume("media", OnDeleteRetain)
	if _, err := RecordExisting(sh, vol, Record{Name: "pv", VolumeID: vol.ID()}, false); err != nil {
		t.Fatal(err)
	}
	inv, err := InspectPath(dir)
	if err != nil || len(inv.Volumes) != 1 || inv.Volumes[0].SubDir != "media" || !inv.Volumes[0].Record.Adopted {
		t.Errorf("inventory after RecordExisting through ShareAt: %+v, %v", inv, err)
	}
}
