package driver

import (
	"reflect"
	"strings"
	"testing"

	"github.com/example/nfs-csi/pkg/nfs"
)

func TestParseCreateParams(t *testing.T) {
	perm := func(v uint32) *uint32 { return &v }
	tests := []struct {
		name    string
		params  map[string]string
		wantErr []string // all must appear in the error; nil means success
		check   func(t *testing.T, p createParams)
	}{
		{
			name:   "minimal",
			params: baseParams(),
			check: func(t *testing.T, p createParams) {
				want := createParams{Server: testServer, Share: testShare, OnDelete: nfs.OnDeleteDelete, TemplateValues: map[string]string{}}
				if !reflect.DeepEqual(p, want) {
					t.Errorf("got %+v, want %+v", p, want)
				}
			},
		},
		{name: "no parameters", params: nil, wantErr: []string{`"server"`, "required"}},
		{name: "missing server", params: map[string]string{"share": testShare}, wantErr: []string{`"server"`, "required"}},
		{name: "blank server", params: map[string]string{"server": "  ", "share": testShare}, wantErr: []string{`"server"`, "required"}},
		{name: "missing share", params: map[string]string{"server": testServer}, wantErr: []string{`"share"`, "required"}},
		{name: "bad server", params: map[string]string{"server": "fd00::1", "share": testShare}, wantErr: []string{"server", "brackets"}},
		{name: "relative share", params: map[string]string{"server": testServer, "share": "export"}, wantErr: []string{"share", "absolute"}},
		{name: "unknown key", params: withParams(map[string]string{"fooBar": "1"}), wantErr: []string{`"fooBar"`, "unknown", "adoptExisting"}},
		{name: "adoptExisting true", params: withParams(map[string]string{"AdoptExisting": "True"}), check: func(t *testing.T, p createParams) {
			if !p.AdoptExisting {
				t.Error("AdoptExisting = false")
			}
		}},
		{name: "adoptExisting absent", params: baseParams(), check: func(t *testing.T, p createParams) {
			if p.AdoptExisting {
				t.Error("AdoptExisting = true by default")
			}
		}},
		{name: "pathPattern of nfs-subdir-external-provisioner", params: withParams(map[string]string{"pathPattern": "${.PVC.namespace}/${.PVC.name}"}), check: func(t *testing.T, p createParams) {
			if p.SubDirTemplate != "${.PVC.namespace}/${.PVC.name}" {
				t.Errorf("SubDirTemplate = %q", p.SubDirTemplate)
			}
		}},
		{name: "pathPattern and subDir", params: withParams(map[string]string{"pathPattern": "${.PVC.name}", "subdir": "x"}), wantErr: []string{"pathPattern", "subdir", "keep one"}},
		{name: "adoptExisting bad", params: withParams(map[string]string{"adoptExisting": "yes"}), wantErr: []string{"adoptExisting", `"yes"`, `"true"`}},
		{name: "unknown csi-looking key without the prefix", params: withParams(map[string]string{"csi.storage.k8s.io": "x"}), wantErr: []string{"csi.storage.k8s.io"}},
		{
			name: "csi.storage.k8s.io keys ignored, pvc/pv ones fill the template values",
			params: withParams(map[string]string{
				"csi.storage.k8s.io/pvc/name":                        "data",
				"csi.storage.k8s.io/pvc/namespace":                   "team-a",
				"csi.storage.k8s.io/pv/name":                         "pvc-123",
				"csi.storage.k8s.io/provisioner-secret-name":         "s",
				"csi.storage.k8s.io/provisioner-secret-namespace":    "ns",
				"csi.storage.k8s.io/fstype":                          "nfs",
				"csi.storage.k8s.io/something-from-a-future-sidecar": "x",
			}),
			check: func(t *testing.T, p createParams) {
				want := map[string]string{nfs.VarPVCName: "data", nfs.VarPVCNamespace: "team-a", nfs.VarPVName: "pvc-123"}
				if !reflect.DeepEqual(p.TemplateValues, want) {
					t.Errorf("TemplateValues = %v, want %v", p.TemplateValues, want)
				}
			},
		},
		{
			name:   "case-insensitive keys",
			params: map[string]string{"SERVER": testServer, "Share": testShare, "subdir": "a/b", "ONDELETE": "retain", "mountoptions": "nfsvers=4.1"},
			check: func(t *testing.T, p createParams) {
				if p.Server != testServer || p.Share != testShare || p.SubDirTemplate != "a/b" || p.OnDelete != nfs.OnDeleteRetain ||
					!reflect.DeepEqual(p.MountOptions, []string{"nfsvers=4.1"}) {
					t.Errorf("got %+v", p)
				}
			},
		},
		{
			name:   "values are trimmed",
			params: map[string]string{"server": " " + testServer + " ", "share": " " + testShare + "\t", "subDir": " x ", "onDelete": " Archive "},
			check: func(t *testing.T, p createParams) {
				if p.Server != testServer || p.Share != testShare || p.SubDirTemplate != "x" || p.OnDelete != nfs.OnDeleteArchive {
					t.Errorf("got %+v", p)
				}
			},
		},
		{name: "onDelete delete", params: withParams(map[string]string{"onDelete": "delete"}), check: wantPolicy(nfs.OnDeleteDelete)},
		{name: "onDelete retain", params: withParams(map[string]string{"onDelete": "retain"}), check: wantPolicy(nfs.OnDeleteRetain)},
		{name: "onDelete archive", params: withParams(map[string]string{"onDelete": "archive"}), check: wantPolicy(nfs.OnDeleteArchive)},
		{name: "onDelete upper case", params: withParams(map[string]string{"onDelete": "RETAIN"}), check: wantPolicy(nfs.OnDeleteRetain)},
		{name: "onDelete bad", params: withParams(map[string]string{"onDelete": "shred"}), wantErr: []string{"onDelete", "shred"}},
		{name: "onDelete empty", params: withParams(map[string]string{"onDelete": ""}), wantErr: []string{"onDelete"}},
		{name: "archiveOnDelete true", params: withParams(map[string]string{"archiveOnDelete": "true"}), check: wantPolicy(nfs.OnDeleteArchive)},
		{name: "archiveOnDelete TRUE", params: withParams(map[string]string{"archiveOnDelete": "TRUE"}), check: wantPolicy(nfs.OnDeleteArchive)},
		{name: "archiveOnDelete false", params: withParams(map[string]string{"archiveOnDelete": "false"}), check: wantPolicy(nfs.OnDeleteDelete)},
		{name: "archiveOnDelete bad", params: withParams(map[string]string{"archiveOnDelete": "yes"}), wantErr: []string{"archiveOnDelete", `"yes"`}},
		{name: "archiveOnDelete agrees with onDelete archive", params: withParams(map[string]string{"onDelete": "archive", "archiveOnDelete": "true"}), check: wantPolicy(nfs.OnDeleteArchive)},
		{name: "archiveOnDelete agrees with onDelete delete", params: withParams(map[string]string{"onDelete": "delete", "archiveOnDelete": "false"}), check: wantPolicy(nfs.OnDeleteDelete)},
		{name: "archiveOnDelete true conflicts with onDelete delete", params: withParams(map[string]string{"onDelete": "delete", "archiveOnDelete": "true"}), wantErr: []string{"onDelete", "archiveOnDelete", "disagree"}},
		{name: "archiveOnDelete false conflicts with onDelete archive", params: withParams(map[string]string{"onDelete": "archive", "archiveOnDelete": "false"}), wantErr: []string{"onDelete", "archiveOnDelete", "disagree"}},
		{name: "archiveOnDelete true conflicts with onDelete retain", params: withParams(map[string]string{"onDelete": "retain", "archiveOnDelete": "true"}), wantErr: []string{"disagree"}},
		{name: "mountPermissions 0777", params: withParams(map[string]string{"mountPermissions": "0777"}), check: wantPerm(perm(0o777))},
		{name: "mountPermissions 2775", params: withParams(map[string]string{"mountPermissions": "2775"}), check: wantPerm(perm(0o2775))},
		{name: "mountPermissions 755", params: withParams(map[string]string{"mountPermissions": "755"}), check: wantPerm(perm(0o755))},
		{name: "mountPermissions 7777", params: withParams(map[string]string{"mountPermissions": "7777"}), check: wantPerm(perm(0o7777))},
		{name: "mountPermissions 0 means none", params: withParams(map[string]string{"mountPermissions": "0"}), check: wantPerm(nil)},
		{name: "mountPermissions 999", params: withParams(map[string]string{"mountPermissions": "999"}), wantErr: []string{"mountPermissions", `"999"`}},
		{name: "mountPermissions abc", params: withParams(map[string]string{"mountPermissions": "abc"}), wantErr: []string{"mountPermissions", `"abc"`}},
		{name: "mountPermissions 10000", params: withParams(map[string]string{"mountPermissions": "10000"}), wantErr: []string{"mountPermissions", `"10000"`}},
		{name: "mountPermissions negative", params: withParams(map[string]string{"mountPermissions": "-1"}), wantErr: []string{"mountPermissions"}},
		{name: "mountPermissions empty", params: withParams(map[string]string{"mountPermissions": ""}), wantErr: []string{"mountPermissions"}},
		{
			name:   "mountOptions parsed",
			params: withParams(map[string]string{"mountOptions": " nfsvers=4.1 , hard,,noatime "}),
			check: func(t *testing.T, p createParams) {
				if want := []string{"nfsvers=4.1", "hard", "noatime"}; !reflect.DeepEqual(p.MountOptions, want) {
					t.Errorf("MountOptions = %q, want %q", p.MountOptions, want)
				}
			},
		},
		{
			name:   "mountOptions empty",
			params: withParams(map[string]string{"mountOptions": ""}),
			check: func(t *testing.T, p createParams) {
				if len(p.MountOptions) != 0 {
					t.Errorf("MountOptions = %q, want none", p.MountOptions)
				}
			},
		},
		{name: "mountOptions with a space inside", params: withParams(map[string]string{"mountOptions": "vers=4 hard"}), wantErr: []string{"mountOptions"}},
		{name: "mountOptions with a control character", params: withParams(map[string]string{"mountOptions": "hard,no\x01atime"}), wantErr: []string{"mountOptions"}},
		{
			name:   "subDir template kept verbatim",
			params: withParams(map[string]string{"subDir": "${pvc.metadata.namespace}/${pvc.metadata.name}"}),
			check: func(t *testing.T, p createParams) {
				if p.SubDirTemplate != "${pvc.metadata.namespace}/${pvc.metadata.name}" {
					t.Errorf("SubDirTemplate = %q", p.SubDirTemplate)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parseCreateParams(tc.params)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("got %+v, want an error mentioning %q", p, tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

func wantPolicy(want nfs.OnDelete) func(*testing.T, createParams) {
	return func(t *testing.T, p createParams) {
		t.Helper()
		if p.OnDelete != want {
			t.Errorf("OnDelete = %q, want %q", p.OnDelete, want)
		}
	}
}

func wantPerm(want *uint32) func(*testing.T, createParams) {
	return func(t *testing.T, p createParams) {
		t.Helper()
		switch {
		case want == nil && p.MountPermissions != nil:
			t.Errorf("MountPermissions = %o, want none", *p.MountPermissions)
		case want != nil && p.MountPermissions == nil:
			t.Errorf("MountPermissions = none, want %o", *want)
		case want != nil && *p.MountPermissions != *want:
			t.Errorf("MountPermissions = %o, want %o", *p.MountPermissions, *want)
		}
	}
}

func TestFormatPermissions(t *testing.T) {
	v := uint32(0o2775)
	for _, tc := range []struct {
		in   *uint32
		want string
	}{{nil, ""}, {&v, "2775"}} {
		if got := formatPermissions(tc.in); got != tc.want {
			t.Errorf("formatPermissions(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestVolumeContext(t *testing.T) {
	tests := []struct {
		vol  nfs.Volume
		want map[string]string
	}{
		{nfs.Volume{Server: testServer, Share: testShare, SubDir: "a/b"}, map[string]string{"server": testServer, "share": testShare, "subDir": "a/b"}},
		{nfs.Volume{Server: testServer, Share: testShare, SubDir: "c", MountOptions: []string{"hard", "nfsvers=4.1"}},
			map[string]string{"server": testServer, "share": testShare, "subDir": "c", "mountOptions": "hard,nfsvers=4.1"}},
	}
	for _, tc := range tests {
		if got := VolumeContext(tc.vol); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("VolumeContext(%+v) = %v, want %v", tc.vol, got, tc.want)
		}
	}
}
