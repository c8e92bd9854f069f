package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/example/nfs-csi/pkg/nfs"
)

// capture runs fn with os.Stdout going to a file, and returns what it wrote.
func capture(t *testing.T, fn func() int) (string, int) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	saved := os.Stdout
	os.Stdout = f
	code := fn()
	os.Stdout = saved
	out, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// The subcommands are wired to their flags: import writes YAML and the
// adopted record, migrate a script, and both refuse what they must.
func TestSubcommands(t *testing.T) {
	share := t.TempDir()
	if err := os.MkdirAll(filepath.Join(share, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, code := capture(t, func() int {
		return runImport([]string{"--server", "10.0.0.5", "--share", "/nfsdata", "--subdir", "/nfsdata/app", "--claim", "shop/data", "--share-mounted-at", share, "--cluster-id", "c1"})
	})
	if code != 0 || !strings.Contains(out, "volumeHandle: v1#retain#10.0.0.5#/nfsdata#app#") || !strings.Contains(out, "kind: PersistentVolumeClaim") {
		t.Errorf("import = %d:\n%s", code, out)
	}
	if inv, err := nfs.InspectPath(share); err != nil || len(inv.Volumes) != 1 || !inv.Volumes[0].Record.Adopted {
		t.Errorf("records after import: %+v, %v", inv, err)
	}
	if _, code := capture(t, func() int {
		return runImport([]string{"--server", "10.0.0.5", "--share", "/nfsdata", "--subdir", "/nfsdata", "--claim", "shop/root"})
	}); code != 1 {
		t.Errorf("import of the share root exited %d, want 1", code)
	}
	out, code = capture(t, func() int {
		return runMigrate([]string{"--from", "../../pkg/manifests/testdata/nfs-subdir-v4.0.2.json"})
	})
	if code != 0 || !strings.HasPrefix(out, "#!/bin/sh") || !strings.Contains(out, "retire_pv pvc-") {
		t.Errorf("migrate = %d:\n%.400s", code, out)
	}
	if _, code := capture(t, func() int { return runMigrate([]string{"--from", "/nonexistent.json"}) }); code != 1 {
		t.Errorf("migrate of a missing file exited %d, want 1", code)
	}
}
