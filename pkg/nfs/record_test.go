package nfs

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func openTestRecordDir(t *testing.T) (root string, recFd int) {
	t.Helper()
	root = t.TempDir()
	fd, err := OpenRecordDir(openRoot(t, root))
	if err != nil {
		t.Fatalf("OpenRecordDir: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return root, fd
}

func TestOpenRecordDir(t *testing.T) {
	root, fd := openTestRecordDir(t)
	fi, err := os.Lstat(filepath.Join(root, RecordDir))
	if err != nil {
		t.Fatal(err)
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("%s is %v, want a private directory", RecordDir, fi.Mode())
	}
	if !sameInode(t, fd, filepath.Join(root, RecordDir)) {
		t.Error("the fd is not the records directory")
	}
	// Opening it again, as another replica would, finds the same directory.
	fd2, err := OpenRecordDir(openRoot(t, root))
	if err != nil {
		t.Fatalf("second OpenRecordDir: %v", err)
	}
	defer unix.Close(fd2)
	if !sameInode(t, fd2, filepath.Join(root, RecordDir)) {
		t.Error("the second fd is not the records directory")
	}
}

func TestOpenRecordDirRefusesSymlink(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	mustSymlink(t, outside, filepath.Join(root, MetadataDirName))
	fd, err := OpenRecordDir(openRoot(t, root))
	if !errors.Is(err, ErrSymlink) {
		if err == nil {
			unix.Close(fd)
		}
		t.Fatalf("OpenRecordDir through a symlink = %v, want ErrSymlink", err)
	}
	if exists(t, filepath.Join(outside, "volumes")) {
		t.Error("the records directory was created outside the share")
	}
}

func TestRecordRoundTrip(t *testing.T) {
	_, fd := openTestRecordDir(t)
	recs := map[string]Record{
		"pvc-1":        {Name: "pvc-1", VolumeID: "v1#delete#h#/s#pvc-1#", CapacityBytes: 1 << 30, MountPermissions: "0775"},
		"ns/app/pvc-2": {Name: "pvc-2", VolumeID: "v1#archive#h#/s#ns/app/pvc-2#vers=4.1"},
		"weird #%\"/ü": {Name: "pvc-3\x00\n", VolumeID: "v1#retain#h#/s#x#"},
	}
	for subDir, rec := range recs {
		if err := CreateRecord(fd, subDir, rec); err != nil {
			t.Fatalf("CreateRecord(%q): %v", subDir, err)
		}
	}
	for subDir, rec := range recs {
		got, ok, err := ReadRecord(fd, subDir)
		if err != nil || !ok {
			t.Fatalf("ReadRecord(%q) = %v, %v", subDir, ok, err)
		}
		rec.Version = 1
		if got != rec {
			t.Errorf("ReadRecord(%q) = %+v, want %+v", subDir, got, rec)
		}
	}
	if err := DeleteRecord(fd, "pvc-1"); err != nil {
		t.Fatalf("DeleteRecord: %v", err)
	}
	if _, ok, err := ReadRecord(fd, "pvc-1"); ok || err != nil {
		t.Errorf("ReadRecord after DeleteRecord = %v, %v; want not found", ok, err)
	}
	// The other records are untouched.
	if _, ok, err := ReadRecord(fd, "ns/app/pvc-2"); !ok || err != nil {
		t.Errorf("ReadRecord(ns/app/pvc-2) after deleting another = %v, %v", ok, err)
	}
	// Deleting twice is not an error.
	if err := DeleteRecord(fd, "pvc-1"); err != nil {
		t.Errorf("second DeleteRecord: %v", err)
	}
	// A deleted record can be created again.
	if err := CreateRecord(fd, "pvc-1", Record{Name: "again"}); err != nil {
		t.Errorf("CreateRecord after DeleteRecord: %v", err)
	}
}

func TestCreateRecordExclusive(t *testing.T) {
	_, fd := openTestRecordDir(t)
	first := Record{Name: "pvc-a", VolumeID: "id-a"}
	if err := CreateRecord(fd, "shared", first); err != nil {
		t.Fatal(err)
	}
	for _, rec := range []Record{first, {Name: "pvc-b", VolumeID: "id-b"}} {
		if err := CreateRecord(fd, "shared", rec); !errors.Is(err, ErrRecordExists) {
			t.Errorf("CreateRecord(%+v) over an existing record = %v, want ErrRecordExists", rec, err)
		}
	}
	got, ok, err := ReadRecord(fd, "shared")
	if err != nil || !ok || got.Name != "pvc-a" || got.VolumeID != "id-a" {
		t.Errorf("the first record was replaced: %+v, %v, %v", got, ok, err)
	}
}

func TestRecordKeysAreDistinct(t *testing.T) {
	// Directories that differ only slightly have separate records.
	subDirs := []string{"a", "A", "a/b", "a b", "ab", "a/b/c", "b/a"}
	seen := map[string]string{}
	for _, s := range subDirs {
		k := recordKey(s)
		if len(k) != 32 || strings.Trim(k, "0123456789abcdef") != "" {
			t.Errorf("recordKey(%q) = %q, want 32 hex digits", s, k)
		}
		if other, dup := seen[k]; dup {
			t.Errorf("recordKey(%q) == recordKey(%q)", s, other)
		}
		seen[k] = s
		if recordKey(s) != k {
			t.Errorf("recordKey(%q) is not deterministic", s)
		}
	}
}

func TestReadRecordMissing(t *testing.T) {
	_, fd := openTestRecordDir(t)
	rec, ok, err := ReadRecord(fd, "never-created")
	if ok || err != nil || rec != (Record{}) {
		t.Errorf("ReadRecord of a missing record = %+v, %v, %v", rec, ok, err)
	}
}

func TestReadRecordCorrupt(t *testing.T) {
	tests := []struct {
		name  string
		plant func(t *testing.T, dir, key string)
	}{
		{"symlink to non-JSON", func(t *testing.T, dir, key string) { mustSymlink(t, "not json at all", filepath.Join(dir, key)) }},
		{"symlink to truncated JSON", func(t *testing.T, dir, key string) { mustSymlink(t, `{"v":1,"name":"x"`, filepath.Join(dir, key)) }},
		{"symlink to a path", func(t *testing.T, dir, key string) { mustSymlink(t, "/etc/passwd", filepath.Join(dir, key)) }},
		{"regular file", func(t *testing.T, dir, key string) { mustWrite(t, filepath.Join(dir, key), `{"v":1}`) }},
		{"directory", func(t *testing.T, dir, key string) { mustMkdirAll(t, filepath.Join(dir, key)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, fd := openTestRecordDir(t)
			tt.plant(t, filepath.Join(root, RecordDir), recordKey("pvc"))
			rec, ok, err := ReadRecord(fd, "pvc")
			if err == nil || ok {
				t.Fatalf("ReadRecord of a corrupt record = %+v, %v, %v; want an error", rec, ok, err)
			}
			if !strings.Contains(err.Error(), `"pvc"`) {
				t.Errorf("error %q does not name the subdirectory", err)
			}
		})
	}
}

// Records used to be checked against 4,095 bytes only, but XFS and several
// NAS filers cap a symlink at 1,024: with a long share path and long names a
// valid record reached about 1,100 bytes there, and CreateVolume failed.
// Every input that validation accepts now gives a record under 1,024 bytes
// that still compares equal to its volume, name, claim and cluster.
func TestRegressionRecordFitsXFSSymlinkLimit(t *testing.T) {
	label := strings.Repeat("s", 63)
	server := strings.Join([]string{label, label, label, strings.Repeat("s", 61)}, ".") // 253 bytes
	component := strings.Repeat("c", MaxComponentLen)
	share := "/" + strings.Repeat(component+"/", 3) + strings.Repeat("d", MaxShareLen-1-3*(MaxComponentLen+1))
	subDir := strings.Repeat(component+"/", 3) + strings.Repeat("e", MaxSubDirLen-3*(MaxComponentLen+1)-2) + "/f"
	vol := Volume{Server: server, Share: share, SubDir: subDir, OnDelete: OnDeleteArchive,
		MountOptions: []string{"nfsvers=4.1", "hard", "timeo=600", "retrans=2", "sec=" + strings.Repeat("k", 300)}}
	if err := vol.Validate(); err != nil {
		t.Fatalf("the test's volume is not valid: %v", err)
	}
	if len(share) != MaxShareLen || len(subDir) != MaxSubDirLen || ValidateServer(server) != nil {
		t.Fatalf("share %d, subDir %d bytes, server %v: not the longest accepted", len(share), len(subDir), ValidateServer(server))
	}
	for _, tt := range []struct {
		name string
		rec  Record
	}{
		{"longest everything", Record{
			Name: strings.Repeat(`n\"`, 2000), VolumeID: vol.ID(), CapacityBytes: math.MaxInt64, MountPermissions: "7777",
			Adopted: true, ClusterID: strings.Repeat("\x01", 64), Created: math.MaxInt64, Tombstone: true,
			ClaimNamespace: strings.Repeat("a", 63), ClaimName: strings.Repeat("\u2028", 253),
		}},
		{"short fields, long ID", Record{Name: "pvc-1", VolumeID: vol.ID(), ClusterID: "c", ClaimNamespace: "ns", ClaimName: "data"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root, fd := openTestRecordDir(t)
			if err := CreateRecord(fd, subDir, tt.rec); err != nil {
				t.Fatalf("CreateRecord: %v", err)
			}
			target, err := os.Readlink(filepath.Join(root, RecordDir, recordKey(subDir)))
			if err != nil {
				t.Fatal(err)
			}
			if len(target) > 1023 {
				t.Errorf("record is %d bytes, over XFS's 1,024-byte symlink limit", len(target))
			}
			got, ok, err := ReadRecord(fd, subDir)
			if err != nil || !ok {
				t.Fatalf("ReadRecord: %v, %v", ok, err)
			}
			if !got.IsVolume(vol.ID()) || got.IsVolume(vol.ID()+"x") || !got.HasName(tt.rec.Name) || got.HasName("other") {
				t.Errorf("read back %+v: volume or name does not compare", got)
			}
			if got.ForeignTo(tt.rec.ClusterID) || !got.ForeignTo("other") || !got.sameClaim(tt.rec) {
				t.Errorf("read back %+v: cluster or claim does not compare", got)
			}
			if got.CapacityBytes != tt.rec.CapacityBytes || got.Tombstone != tt.rec.Tombstone || got.Created != tt.rec.Created {
				t.Errorf("read back %+v, want %+v", got, tt.rec)
			}
		})
	}
}

// A record as the code before compact records wrote it (version 1, the
// whole volume ID) still reads and compares.
func TestVersion1RecordStillReads(t *testing.T) {
	root, fd := openTestRecordDir(t)
	const v1 = `{"v":1,"name":"pvc-1","id":"v1#delete#10.0.0.1#/export#pvc-1#","capacityBytes":1073741824,"mountPermissions":"0777","adopted":true,"clusterID":"a"}`
	mustSymlink(t, v1, filepath.Join(root, RecordDir, recordKey("pvc-1")))
	got, ok, err := ReadRecord(fd, "pvc-1")
	if err != nil || !ok {
		t.Fatalf("ReadRecord: %v, %v", ok, err)
	}
	if !got.IsVolume("v1#delete#10.0.0.1#/export#pvc-1#") || !got.HasName("pvc-1") || got.ForeignTo("a") || !got.Adopted || got.MountPermissions != "0777" {
		t.Errorf("v1 record read as %+v", got)
	}
}

func TestDeleteRecordError(t *testing.T) {
	root, fd := openTestRecordDir(t)
	// Something that is not a symlink holds the key: DeleteRecord reports
	// it instead of pretending the record is gone.
	mustWrite(t, filepath.Join(root, RecordDir, recordKey("pvc"), "x"), "x")
	if err := DeleteRecord(fd, "pvc"); err == nil || !strings.Contains(err.Error(), `"pvc"`) {
		t.Errorf("DeleteRecord of a directory = %v", err)
	}
}
