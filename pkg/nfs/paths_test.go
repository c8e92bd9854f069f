package nfs

import (
	"strings"
	"testing"
)

func TestValidateServer(t *testing.T) {
	tests := []struct {
		server string
		ok     bool
	}{
		{"10.0.0.1", true},
		{"192.168.100.200", true},
		{"nfs", true},
		{"nfs.example.com", true},
		{"nfs-01.example.com", true},
		{"my_nfs.local", true},
		{"NFS.Example.COM", true},
		{strings.Repeat("a", 63) + ".example", true},
		{strings.Repeat(strings.Repeat("a", 62)+".", 5)[:253], true},
		{"[fd00::1]", true},
		{"[::1]", true},
		{"[2001:db8::8a2e:370:7334]", true},
		{"[::ffff:10.0.0.1]", true},

		{"", false},
		{"fd00::1", false},
		{"::1", false},
		{"h:2049", false},
		{"h:/export", false},
		{"[fd00::1", false},
		{"fd00::1]", false},
		{"[]", false},
		{"[10.0.0.1]", false},
		{"[nfs.example.com]", false},
		{"[fd00::1]:2049", false},
		{"-nfs", false},
		{"nfs-", false},
		{"nfs.-a", false},
		{".nfs", false},
		{"nfs.", false},
		{"a..b", false},
		{strings.Repeat("a", 64) + ".example", false},
		{strings.Repeat(strings.Repeat("a", 62)+".", 5)[:254], false},
		{"nfs server", false},
		{"nfs/x", false},
		{"nfs#x", false},
		{"nfs%x", false},
		{"nfs,x", false},
		{"nfs\x00", false},
		{"nfs\n", false},
		{"nfs@x", false},
		{"nfs.exämple.com", false},
	}
	for _, tt := range tests {
		if err := ValidateServer(tt.server); (err == nil) != tt.ok {
			t.Errorf("ValidateServer(%q) = %v, want ok=%v", tt.server, err, tt.ok)
		}
	}
}

func TestValidateShare(t *testing.T) {
	tests := []struct {
		share string
		ok    bool
	}{
		{"/", true},
		{"/srv", true},
		{"/srv/nfs", true},
		{"/srv/nfs data/x", true},
		{"/srv/#%", true},
		{"/srv/..x", true},
		{"/srv/.hidden", true},
		{"/" + strings.Repeat("a", MaxComponentLen), true},
		{"/" + strings.Repeat("a/", (MaxShareLen-1)/2) + "b", true},

		{"", false},
		{"srv", false},
		{"./srv", false},
		{"//", false},
		{"//srv", false},
		{"/srv/", false},
		{"/srv//nfs", false},
		{"/..", false},
		{"/srv/..", false},
		{"/srv/../etc", false},
		{"/.", false},
		{"/srv/./x", false},
		{"/srv\x00", false},
		{"/srv\nx", false},
		{"/srv\x7f", false},
		{"/" + strings.Repeat("a", MaxComponentLen+1), false},
		{"/" + strings.Repeat("a/", MaxShareLen/2) + "b", false},
	}
	for _, tt := range tests {
		if err := ValidateShare(tt.share); (err == nil) != tt.ok {
			t.Errorf("ValidateShare(%q) = %v, want ok=%v", tt.share, err, tt.ok)
		}
	}
}

func TestValidateSubDir(t *testing.T) {
	tests := []struct {
		subDir string
		ok     bool
	}{
		{"", true},
		{"pvc-1", true},
		{"ns/pvc-1", true},
		{"a/b/c/d/e", true},
		{"...", true},
		{"..a", true},
		{"a..", true},
		{".nfs-csi2", true},
		{"x/.nfs-csi", true},
		{".nfs1234", true},
		{"dir with space/ünïcode", true},
		{"#%", true},
		{strings.Repeat("a", MaxComponentLen), true},
		{strings.Repeat("abc/", (MaxSubDirLen-1)/4) + "x", true},

		{"/", false},
		{"/a", false},
		{"a/", false},
		{"a//b", false},
		{"..", false},
		{"../a", false},
		{"a/..", false},
		{"a/../b", false},
		{".", false},
		{"./a", false},
		{"a/.", false},
		{"a\x00b", false},
		{"a\x01", false},
		{"a\x1f", false},
		{"a\x7f", false},
		{"a\rb", false},
		{".nfs-csi", false},
		{".nfs-csi/volumes", false},
		{".nfs-csi/x/y", false},
		{strings.Repeat("a", MaxComponentLen+1), false},
		{"ok/" + strings.Repeat("a", MaxComponentLen+1) + "/ok", false},
		{strings.Repeat("abc/", MaxSubDirLen/4) + "x", false},
	}
	for _, tt := range tests {
		if err := ValidateSubDir(tt.subDir); (err == nil) != tt.ok {
			t.Errorf("ValidateSubDir(%q) = %v, want ok=%v", tt.subDir, err, tt.ok)
		}
	}
}

func TestValidateComponent(t *testing.T) {
	tests := []struct {
		c  string
		ok bool
	}{
		{"pvc-0a1b", true},
		{"default", true},
		{".nfs-csi", true}, // a single component; ValidateSubDir guards the root
		{"...", true},
		{strings.Repeat("x", MaxComponentLen), true},

		{"", false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"/", false},
		{"../etc", false},
		{"a\x00", false},
		{"a\n", false},
		{strings.Repeat("x", MaxComponentLen+1), false},
	}
	for _, tt := range tests {
		if err := ValidateComponent(tt.c); (err == nil) != tt.ok {
			t.Errorf("ValidateComponent(%q) = %v, want ok=%v", tt.c, err, tt.ok)
		}
	}
}
