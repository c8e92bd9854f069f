package nfs

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseShareOptions(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		wantErr string // empty: valid
		server  string
		share   string
		want    []string // nil: not configured
	}{
		{name: "empty", json: "", server: testServer, share: testShare},
		{name: "one share", json: `[{"server":"` + testServer + `","share":"` + testShare + `","mountOptions":["nfsvers=4.1","hard"]}]`,
			server: testServer, share: testShare, want: []string{"nfsvers=4.1", "hard"}},
		{name: "host case", json: `[{"server":"NFS.example.internal","share":"/srv/nfs","mountOptions":["nfsvers=4.1"]}]`,
			server: "nfs.example.internal", share: "/srv/nfs", want: []string{"nfsvers=4.1"}},
		{name: "another share is not configured", json: `[{"server":"` + testServer + `","share":"/other","mountOptions":["nfsvers=4.1"]}]`,
			server: testServer, share: testShare},
		{name: "no options: the controller's defaults only", json: `[{"server":"` + testServer + `","share":"` + testShare + `","mountOptions":[]}]`,
			server: testServer, share: testShare, want: []string{}},
		{name: "IPv6", json: `[{"server":"[fd00::5]","share":"/","mountOptions":["nfsvers=4.2"]}]`,
			server: "[fd00::5]", share: "/", want: []string{"nfsvers=4.2"}},
		{name: "not JSON", json: `server=10.0.0.1`, wantErr: "JSON list"},
		{name: "unknown field", json: `[{"server":"s","share":"/x","options":["a"]}]`, wantErr: "unknown field"},
		{name: "bad server", json: `[{"server":"","share":"/export","mountOptions":[]}]`, wantErr: "entry 1: server is empty"},
		{name: "relative share", json: `[{"server":"s","share":"export","mountOptions":[]}]`, wantErr: "must be an absolute"},
		{name: "option with a space", json: `[{"server":"s","share":"/x","mountOptions":["a b"]}]`, wantErr: "s:/x"},
		{name: "duplicate", json: `[{"server":"s","share":"/x","mountOptions":[]},{"server":"S","share":"/x","mountOptions":[]}]`, wantErr: "listed twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := ParseShareOptions(tc.json)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, ok := o.For(tc.server, tc.share)
			if ok != (tc.want != nil) || (ok && !reflect.DeepEqual(got, tc.want)) {
				t.Errorf("For(%s, %s) = %q, %v; want %q", tc.server, tc.share, got, ok, tc.want)
			}
		})
	}
}

// The controller's share mounts used to take the options each volume ID
// carries, always: when one stopped working (the server dropped NFSv3), no
// configuration could change them, and DeleteVolume failed forever.
func TestRegressionAcquireUsesConfiguredShareOptions(t *testing.T) {
	sm, m, _ := newTestShareMounts(t, time.Hour)
	o, err := ParseShareOptions(`[{"server":"` + testServer + `","share":"` + testShare + `","mountOptions":["nfsvers=4.1","hard"]}]`)
	if err != nil {
		t.Fatal(err)
	}
	sm.UseShareOptions(o)
	v3, err := sm.Acquire(context.Background(), testServer, testShare, []string{"nfsvers=3"})
	if err != nil {
		t.Fatal(err)
	}
	defer v3.Release()
	other, err := sm.Acquire(context.Background(), testServer, testShare, []string{"nfsvers=4.2"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Release()
	mps, _ := m.MountPoints()
	mp, ok := LookupMount(mps, v3.Path())
	if !ok || !reflect.DeepEqual(mp.Options, []string{"nfsvers=4.1", "hard", "nolock"}) {
		t.Errorf("share mount %+v, %v; want the configured options plus nolock", mp, ok)
	}
	if other.Path() != v3.Path() {
		t.Error("volumes of one configured share with different handle options got different mounts")
	}
}
