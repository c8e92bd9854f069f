package nfs

import (
	"errors"
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
	if exists(t, filepath.Join(root, RecordDir, nameKey("pvc-a"))) {
		t.Error("Delete left the name entry")
	}
	if _, ok, _ := st.Get("ns/a"); ok {
		t.Error("Delete left the record")
	}
}
