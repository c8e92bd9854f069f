// Regression tests for issue 8: who owns a directory on the share, and what
// DeleteVolume may remove.
package nfs

import (
	"path/filepath"
	"testing"
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
