package nfs

import (
	"strings"
	"testing"
)

func TestCheckMountOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    []string
		wantErr string
	}{
		{"none", nil, ""},
		{"one version", []string{"nfsvers=4.1", "hard", "nolock"}, ""},
		{"vers alone", []string{"vers=3"}, ""},
		{"no version", []string{"hard", "noatime"}, ""},
		{"two versions", []string{"nfsvers=3", "nfsvers=4.1", "nolock"}, "nfsvers=3, nfsvers=4.1"},
		{"vers and nfsvers, same value", []string{"vers=4.1", "nfsvers=4.1"}, "2 times"},
		{"upper case key", []string{"NFSVERS=3", "vers=4.2"}, "NFSVERS=3, vers=4.2"},
		{"option that only starts like one", []string{"versions=2", "nfsvers=4.1"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckMountOptions(tc.opts)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckMountOptions(%q) = %v, want nil", tc.opts, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("CheckMountOptions(%q) = %v, want an error with %q", tc.opts, err, tc.wantErr)
			}
		})
	}
}
