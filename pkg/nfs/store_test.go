package nfs

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSymlinkStore(t *testing.T) {
	root, fd := openTestRecordDir(t)
	st := NewSymlinkStore(fd)
	a := testRecord(testVolume("ns/a", OnDeleteDelete))
	a.Name = "pvc-a"
	if err := st.Create("ns/a", a); err != nil {
		t.Fatal(err)
	}
	if err := st.Create("ns/a", a); !errors.Is(err, ErrRecordExists) {
		t.Errorf("second Create = %v, want ErrRecordExists", err)
	}
	if got, ok, err := st.Get("ns/a"); err != nil || !ok || !got.HasName("pvc-a") {
		t.Errorf("Get = %+v, %v, %v", got, ok, err)
	}
	if got, sub, ok, err := st.GetByName("pvc-a"); err != nil || !ok || sub != "ns/a" || !got.IsVolume(a.VolumeID) {
		t.Errorf("GetByName = %+v, %q, %v, %v", got, sub, ok, err)
	}
	if _, _, ok, err := st.GetByName("pvc-none"); err != nil || ok {
		t.Errorf("GetByName of an unknown name = %v, %v", ok, err)
	}

	// A tombstone is not a live volume of its name.
	a.Tombstone = true
	if err := st.Update("ns/a", a); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := st.Get("ns/a"); !got.Tombstone {
		t.Errorf("Update did not replace the record: %+v", got)
	}
	if _, _, ok, _ := st.GetByName("pvc-a"); ok {
		t.Error("GetByName found a tombstone")
	}

	// A record of the code before the store (no name entry) is listed with
	// the subDir of its volume ID; a compact one through its name entry.
	old := testVolume("legacy", OnDeleteDelete)
	mustSymlink(t, `{"v":1,"name":"pvc-old","id":"`+old.ID()+`"}`, filepath.Join(root, RecordDir, recordKey("legacy")))
	long := strings.Repeat("l", 200) + "/" + strings.Repeat("m", 200)
	b := Record{Name: "pvc-b", VolumeID: testVolume(long, OnDeleteDelete).ID() + strings.Repeat(",x", 400)}
	if err := st.Create(long, b); err != nil {
		t.Fatal(err)
	}
	list, err := st.List()
	if err != nil {
		t.Fatal(err)
	}
	var subDirs []string
	for _, r := range list {
		subDirs = append(subDirs, r.SubDir)
	}
	slices.Sort(subDirs)
	if want := []string{"legacy", long, "ns/a"}; !slices.Equal(subDirs, want) {
		t.Errorf("List subDirs = %q, want %q", subDirs, want)
	}

	if err := st.Delete("ns/a"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete("ns/a"); err != nil {
		t.Errorf("second Delete = %v", err)
	}
	if exists(t, filepath.Join(root, RecordDir, recordKey("pvc-a"))) {
		t.Error("Delete left the name entry")
	}
	if _, ok, _ := st.Get("ns/a"); ok {
		t.Error("Delete left the record")
	}
}

// A volume whose subDir is its name has one entry, its record, which its
// name is found by; a name reused with another subDir meets the other
// volume's entry in either order, and a stale entry is taken over.
func TestSymlinkStoreNameEntries(t *testing.T) {
	entries := func(t *testing.T, root string) []string {
		t.Helper()
		des, err := os.ReadDir(filepath.Join(root, RecordDir))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, de := range des {
			names = append(names, de.Name())
		}
		return names
	}
	t.Run("subDir is the name", func(t *testing.T) {
		root, fd := openTestRecordDir(t)
		st := NewSymlinkStore(fd)
		rec := namedRecord("pvc-a", "pvc-a")
		if err := st.Create("pvc-a", rec); err != nil {
			t.Fatal(err)
		}
		if got := entries(t, root); !slices.Equal(got, []string{recordKey("pvc-a")}) {
			t.Errorf("entries = %q, want the record alone", got)
		}
		if _, sub, ok, err := st.GetByName("pvc-a"); err != nil || !ok || sub != "pvc-a" {
			t.Errorf("GetByName = %q, %v, %v", sub, ok, err)
		}
		other := namedRecord("elsewhere", "pvc-a")
		if err := st.Create("elsewhere", other); !errors.Is(err, ErrNameTaken) {
			t.Errorf("Create of the name in another subDir = %v, want ErrNameTaken", err)
		}
		if got := entries(t, root); len(got) != 1 {
			t.Errorf("the refused Create left entries: %q", got)
		}
		if err := st.Delete("pvc-a"); err != nil {
			t.Fatal(err)
		}
		if got := entries(t, root); len(got) != 0 {
			t.Errorf("Delete left %q", got)
		}
	})
	t.Run("templated first, then the name as subDir", func(t *testing.T) {
		root, fd := openTestRecordDir(t)
		st := NewSymlinkStore(fd)
		rec := namedRecord("ns/a", "pvc-a")
		if err := st.Create("ns/a", rec); err != nil {
			t.Fatal(err)
		}
		def := namedRecord("pvc-a", "pvc-a")
		var taken *NameTakenError
		if err := st.Create("pvc-a", def); !errors.As(err, &taken) || taken.SubDir != "ns/a" {
			t.Fatalf("Create(pvc-a) of a name that ns/a has = %v, want a *NameTakenError naming ns/a", err)
		}
		if _, sub, ok, err := st.GetByName("pvc-a"); err != nil || !ok || sub != "ns/a" {
			t.Errorf("GetByName = %q, %v, %v", sub, ok, err)
		}
		if err := st.Delete("ns/a"); err != nil {
			t.Fatal(err)
		}
		if got := entries(t, root); len(got) != 0 {
			t.Errorf("Delete left %q", got)
		}
	})
	t.Run("stale entry taken over", func(t *testing.T) {
		root, fd := openTestRecordDir(t)
		st := NewSymlinkStore(fd)
		// The entry of a volume whose record is gone (a crash between the
		// two symlinks of its create).
		mustSymlink(t, nameEntryMark+"ns/gone", filepath.Join(root, RecordDir, recordKey("pvc-a")))
		def := namedRecord("pvc-a", "pvc-a")
		if err := st.Create("pvc-a", def); err != nil {
			t.Fatalf("Create over a stale name entry: %v", err)
		}
		if got, ok, err := st.Get("pvc-a"); err != nil || !ok || !got.HasName("pvc-a") {
			t.Errorf("Get = %+v, %v, %v", got, ok, err)
		}
		tmpl := namedRecord("ns/b", "pvc-b")
		mustSymlink(t, nameEntryMark+"ns/gone", filepath.Join(root, RecordDir, recordKey("pvc-b")))
		if err := st.Create("ns/b", tmpl); err != nil {
			t.Fatalf("Create of a name with a stale entry: %v", err)
		}
		if _, sub, ok, err := st.GetByName("pvc-b"); err != nil || !ok || sub != "ns/b" {
			t.Errorf("GetByName = %q, %v, %v", sub, ok, err)
		}
	})
}

// namedRecord is the test record of a volume in subDir with this CSI name.
func namedRecord(subDir, name string) Record {
	rec := testRecord(testVolume(subDir, OnDeleteDelete))
	rec.Name = name
	return rec
}
