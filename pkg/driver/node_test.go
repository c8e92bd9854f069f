package driver

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/example/nfs-csi/pkg/nfs"
)

func TestNodeGetInfo(t *testing.T) {
	e := newEnv(t)
	resp, err := e.d.NodeGetInfo(context.Background(), &csi.NodeGetInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetNodeId() != testNode {
		t.Errorf("node ID %q, want %q", resp.GetNodeId(), testNode)
	}
	if resp.GetAccessibleTopology() != nil || resp.GetMaxVolumesPerNode() != 0 {
		t.Errorf("want no topology and no volume limit, got %v", resp)
	}
}

func TestNodeGetCapabilities(t *testing.T) {
	e := newEnv(t)
	resp, err := e.d.NodeGetCapabilities(context.Background(), &csi.NodeGetCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[csi.NodeServiceCapability_RPC_Type]bool{}
	for _, c := range resp.GetCapabilities() {
		got[c.GetRpc().GetType()] = true
	}
	for _, want := range []csi.NodeServiceCapability_RPC_Type{
		csi.NodeServiceCapability_RPC_GET_VOLUME_STATS,
		csi.NodeServiceCapability_RPC_GET_VOLUME_HEALTH,
		csi.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
	} {
		if !got[want] {
			t.Errorf("capability %v missing", want)
		}
	}
	if got[csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME] {
		t.Error("STAGE_UNSTAGE_VOLUME advertised, but there is no NodeStageVolume")
	}
}

// nodeVol is a volume for the node tests: created through the controller, so
// its ID and volume context are the driver's own.
func (e *env) nodeVol(t *testing.T, name string) *csi.Volume {
	t.Helper()
	return e.create(t, name, baseParams())
}

func publishReq(v *csi.Volume, target string, c *csi.VolumeCapability) *csi.NodePublishVolumeRequest {
	return &csi.NodePublishVolumeRequest{VolumeId: v.GetVolumeId(), VolumeContext: v.GetVolumeContext(), TargetPath: target, VolumeCapability: c}
}

// mountsAt returns the fake mounts at target.
func (e *env) mountsAt(t *testing.T, target string) []nfs.MountPoint {
	t.Helper()
	var out []nfs.MountPoint
	for _, mp := range e.nodeMounts(t) {
		if mp.Path == target {
			out = append(out, mp)
		}
	}
	return out
}

func TestNodePublishVolumeInvalidArgument(t *testing.T) {
	e := newEnv(t)
	v := e.nodeVol(t, "pvc-1")
	target := filepath.Join(t.TempDir(), "target")
	tests := []struct {
		name   string
		mutate func(r *csi.NodePublishVolumeRequest)
	}{
		{"no volume ID", func(r *csi.NodePublishVolumeRequest) { r.VolumeId = "" }},
		{"no target", func(r *csi.NodePublishVolumeRequest) { r.TargetPath = "" }},
		{"no capability", func(r *csi.NodePublishVolumeRequest) { r.VolumeCapability = nil }},
		{"block", func(r *csi.NodePublishVolumeRequest) { r.VolumeCapability = blockCap() }},
		{"no access mode", func(r *csi.NodePublishVolumeRequest) {
			r.VolumeCapability = &csi.VolumeCapability{AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}}}
		}},
		{"bad mount flag", func(r *csi.NodePublishVolumeRequest) {
			r.VolumeCapability = mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, "ro,hard")
		}},
		{"subDir escaping the share", func(r *csi.NodePublishVolumeRequest) {
			r.VolumeContext = map[string]string{"server": testServer, "share": testShare, "subDir": "../x"}
		}},
		{"absolute subDir", func(r *csi.NodePublishVolumeRequest) {
			r.VolumeContext = map[string]string{"server": testServer, "share": testShare, "subDir": "/etc"}
		}},
		{"share without server", func(r *csi.NodePublishVolumeRequest) {
			r.VolumeContext = map[string]string{"share": testShare, "subDir": "pvc-1"}
		}},
		{"bad server", func(r *csi.NodePublishVolumeRequest) {
			r.VolumeContext = map[string]string{"server": "evil:/x", "share": testShare}
		}},
		{"bad mount options", func(r *csi.NodePublishVolumeRequest) {
			r.VolumeContext = map[string]string{"server": testServer, "share": testShare, "mountOptions": "a b"}
		}},
		{"a static PV's version beside the class's", func(r *csi.NodePublishVolumeRequest) {
			r.VolumeContext = map[string]string{"server": testServer, "share": testShare, "subDir": "pvc-1", "mountOptions": "nfsvers=3"}
			r.VolumeCapability = mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, "nfsvers=4.1")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := publishReq(v, target, rwo())
			tc.mutate(req)
			_, err := e.d.NodePublishVolume(context.Background(), req)
			wantCode(t, err, codes.InvalidArgument)
			if exists(target) {
				t.Errorf("target %s was created", target)
			}
		})
	}
	if mps := e.nodeMounts(t); len(mps) != 0 {
		t.Errorf("mounts after invalid requests: %v", mps)
	}
}

func TestNodePublishVolume(t *testing.T) {
	tests := []struct {
		name     string
		cap      *csi.VolumeCapability
		readonly bool
		context  map[string]string // nil: the volume's own
		id       string            // "": the volume's own
		wantSrc  string
		wantOpts []string
		wantRO   bool
	}{
		{name: "read-write", cap: rwo(), wantSrc: testSource + "/pvc-1"},
		{name: "readonly flag", cap: rwo(), readonly: true, wantSrc: testSource + "/pvc-1", wantOpts: []string{"ro"}, wantRO: true},
		{name: "reader-only access mode", cap: mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY), wantSrc: testSource + "/pvc-1", wantOpts: []string{"ro"}, wantRO: true},
		{name: "mount flags", cap: mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER, "nfsvers=4.2", "hard"), wantSrc: testSource + "/pvc-1", wantOpts: []string{"nfsvers=4.2", "hard"}},
		{
			name: "ID only, no volume context", cap: rwo(), context: map[string]string{},
			wantSrc: testSource + "/pvc-1",
		},
		{
			name: "static volume from the volume context", cap: rwo(), id: "static-pv-1",
			context: map[string]string{"server": testServer, "share": testShare, "subDir": "static/data"},
			wantSrc: testSource + "/static/data",
		},
		{
			name: "static volume, keys in other case, with mount options", cap: rwo(), id: "static-pv-2",
			context: map[string]string{"Server": testServer, "SHARE": testShare, "subdir": "static/data", "mountOptions": "nfsvers=3,nolock"},
			wantSrc: testSource + "/static/data", wantOpts: []string{"nfsvers=3", "nolock"},
		},
		{
			name: "static volume of the whole share", cap: rwo(), id: "static-pv-3",
			context: map[string]string{"server": testServer, "share": testShare},
			wantSrc: testSource,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			v := e.nodeVol(t, "pvc-1")
			e.writeExport(t, "pvc-1/hello", "from pvc-1")
			e.writeExport(t, "static/data/hello", "from static")
			e.writeExport(t, "hello", "from the share root")
			req := publishReq(v, filepath.Join(t.TempDir(), "pods", "uid", "mount"), tc.cap)
			req.Readonly = tc.readonly
			if tc.context != nil {
				req.VolumeContext = tc.context
			}
			if tc.id != "" {
				req.VolumeId = tc.id
			}
			if _, err := e.d.NodePublishVolume(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			mps := e.mountsAt(t, req.TargetPath)
			if len(mps) != 1 {
				t.Fatalf("mounts at the target: %v, want one", mps)
			}
			if mps[0].Source != tc.wantSrc {
				t.Errorf("source %s, want %s", mps[0].Source, tc.wantSrc)
			}
			for _, o := range tc.wantOpts {
				if !slices.Contains(mps[0].Options, o) {
					t.Errorf("options %q lack %q", mps[0].Options, o)
				}
			}
			if mps[0].ReadOnly() != tc.wantRO {
				t.Errorf("options %q: read-only %v, want %v", mps[0].Options, mps[0].ReadOnly(), tc.wantRO)
			}
			if _, err := os.Stat(filepath.Join(req.TargetPath, "hello")); err != nil {
				t.Errorf("the volume's content is not visible at the target: %v", err)
			}

			// Again at the same target: success, and no second mount.
			calls := e.fake.MountCalls
			if _, err := e.d.NodePublishVolume(context.Background(), req); err != nil {
				t.Fatalf("repeated publish: %v", err)
			}
			if n := len(e.mountsAt(t, req.TargetPath)); n != 1 || e.fake.MountCalls != calls {
				t.Errorf("repeated publish: %d mounts at the target and %d new mount calls, want 1 and 0", n, e.fake.MountCalls-calls)
			}
		})
	}
}

func TestNodePublishVolumeConflicts(t *testing.T) {
	sw := mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER)
	mw := mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER)
	tests := []struct {
		name          string
		first, second *csi.VolumeCapability
		firstRO       bool
		secondRO      bool
		sameTarget    bool
		want          codes.Code
	}{
		{name: "same target, readonly differs", first: rwo(), second: rwo(), secondRO: true, sameTarget: true, want: codes.AlreadyExists},
		{name: "same target, read-only first", first: rwo(), second: rwo(), firstRO: true, sameTarget: true, want: codes.AlreadyExists},
		{name: "single writer at a second target", first: sw, second: sw, want: codes.FailedPrecondition},
		{name: "single writer, then multi writer elsewhere", first: sw, second: mw, want: codes.FailedPrecondition},
		{name: "multi writer, then single writer elsewhere", first: mw, second: sw, want: codes.FailedPrecondition},
		{name: "multi writer at a second target", first: mw, second: mw, want: codes.OK},
		{name: "single-node writer at a second target", first: rwo(), second: rwo(), want: codes.OK},
		{name: "single writer, same target again", first: sw, second: sw, sameTarget: true, want: codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			v := e.nodeVol(t, "pvc-1")
			dir := t.TempDir()
			first := publishReq(v, filepath.Join(dir, "a"), tc.first)
			first.Readonly = tc.firstRO
			if _, err := e.d.NodePublishVolume(context.Background(), first); err != nil {
				t.Fatal(err)
			}
			second := publishReq(v, filepath.Join(dir, "b"), tc.second)
			if tc.sameTarget {
				second.TargetPath = first.TargetPath
			}
			second.Readonly = tc.secondRO
			_, err := e.d.NodePublishVolume(context.Background(), second)
			wantCode(t, err, tc.want)
			wantMounts := 2
			if tc.want != codes.OK || tc.sameTarget {
				wantMounts = 1
			}
			if mps := e.nodeMounts(t); len(mps) != wantMounts {
				t.Errorf("mounts: %v, want %d", mps, wantMounts)
			}
			if got := e.mountsAt(t, first.TargetPath); len(got) != 1 || got[0].ReadOnly() != tc.firstRO {
				t.Errorf("the first publication changed: %v", got)
			}
		})
	}
}

func TestNodePublishVolumeSingleWriterAfterUnpublish(t *testing.T) {
	e := newEnv(t)
	v := e.nodeVol(t, "pvc-1")
	sw := mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER)
	dir := t.TempDir()
	a, b := publishReq(v, filepath.Join(dir, "a"), sw), publishReq(v, filepath.Join(dir, "b"), sw)
	if _, err := e.d.NodePublishVolume(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: v.GetVolumeId(), TargetPath: a.TargetPath}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.NodePublishVolume(context.Background(), b); err != nil {
		t.Errorf("publish at another target after the first was unpublished: %v", err)
	}
}

func TestNodePublishVolumeTargetHoldsOtherVolume(t *testing.T) {
	e := newEnv(t)
	v1, v2 := e.nodeVol(t, "pvc-1"), e.nodeVol(t, "pvc-2")
	target := filepath.Join(t.TempDir(), "t")
	if _, err := e.d.NodePublishVolume(context.Background(), publishReq(v1, target, rwo())); err != nil {
		t.Fatal(err)
	}
	_, err := e.d.NodePublishVolume(context.Background(), publishReq(v2, target, rwo()))
	wantCode(t, err, codes.AlreadyExists)
	if got := e.mountsAt(t, target); len(got) != 1 || got[0].Source != testSource+"/pvc-1" {
		t.Errorf("mounts at the target: %v", got)
	}
}

func TestNodePublishVolumeMountErrors(t *testing.T) {
	tests := []struct {
		name    string
		fail    string
		id      string
		context map[string]string
		want    codes.Code
		msg     []string
	}{
		{
			name: "access denied",
			fail: "mount.nfs: access denied by server while mounting 10.0.0.1:/export/pvc-1",
			want: codes.PermissionDenied, msg: []string{testServer, testShare, testNode, "/etc/exports"},
		},
		{
			name: "server unreachable",
			fail: "mount.nfs: Connection timed out",
			want: codes.Unavailable, msg: []string{testServer, testNode},
		},
		{
			name: "helper missing",
			fail: "mount: wrong fs type, bad option, bad superblock on 10.0.0.1:/export/pvc-1, missing codepage or helper program, or other error",
			want: codes.FailedPrecondition, msg: []string{"nfs-common"},
		},
		{
			name: "directory missing on the server", id: "static-pv-1",
			context: map[string]string{"server": testServer, "share": testShare, "subDir": "gone"},
			want:    codes.NotFound, msg: []string{testServer, "static-pv-1"},
		},
		{
			name: "server exports nothing", id: "static-pv-2",
			context: map[string]string{"server": "10.0.0.2", "share": testShare},
			want:    codes.PermissionDenied, msg: []string{"10.0.0.2", testNode},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			v := e.nodeVol(t, "pvc-1")
			e.fake.FailWith = tc.fail
			req := publishReq(v, filepath.Join(t.TempDir(), "t"), rwo())
			if tc.id != "" {
				req.VolumeId, req.VolumeContext = tc.id, tc.context
			}
			_, err := e.d.NodePublishVolume(context.Background(), req)
			wantCode(t, err, tc.want)
			wantMessageContains(t, err, tc.msg...)
			if mps := e.nodeMounts(t); len(mps) != 0 {
				t.Errorf("mounts after a failed mount: %v", mps)
			}
			// The failed publication does not block the next one.
			e.fake.FailWith = ""
			if tc.id == "" {
				if _, err := e.d.NodePublishVolume(context.Background(), req); err != nil {
					t.Errorf("publish after the server recovered: %v", err)
				}
			}
		})
	}
}

func TestNodePublishVolumeNotFound(t *testing.T) {
	e := newEnv(t)
	for _, id := range []string{"static-pv-1", "fake-vol-id", "v1#delete#10.0.0.1#/export#../x#"} {
		req := &csi.NodePublishVolumeRequest{VolumeId: id, TargetPath: filepath.Join(t.TempDir(), "t"), VolumeCapability: rwo()}
		_, err := e.d.NodePublishVolume(context.Background(), req)
		wantCode(t, err, codes.NotFound)
		if exists(req.TargetPath) {
			t.Errorf("%s: target created", id)
		}
	}
}

func TestNodeUnpublishVolume(t *testing.T) {
	e := newEnv(t)
	v := e.nodeVol(t, "pvc-1")
	e.writeExport(t, "pvc-1/data", "keep")
	target := filepath.Join(t.TempDir(), "t")
	if _, err := e.d.NodePublishVolume(context.Background(), publishReq(v, target, rwo())); err != nil {
		t.Fatal(err)
	}
	unpub := &csi.NodeUnpublishVolumeRequest{VolumeId: v.GetVolumeId(), TargetPath: target}
	if _, err := e.d.NodeUnpublishVolume(context.Background(), unpub); err != nil {
		t.Fatal(err)
	}
	if len(e.mountsAt(t, target)) != 0 {
		t.Error("still mounted")
	}
	if _, err := os.Lstat(target); !os.IsNotExist(err) {
		t.Errorf("target still exists: %v", err)
	}
	if data, err := os.ReadFile(e.exportPath("pvc-1/data")); err != nil || string(data) != "keep" {
		t.Errorf("unpublish touched the volume's data: %q, %v", data, err)
	}
	// Idempotent: the target is gone now.
	if _, err := e.d.NodeUnpublishVolume(context.Background(), unpub); err != nil {
		t.Errorf("second unpublish: %v", err)
	}
	// Never published at all.
	if _, err := e.d.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: "fake-vol-id", TargetPath: filepath.Join(t.TempDir(), "none")}); err != nil {
		t.Errorf("unpublish of a missing target: %v", err)
	}
	// An empty, unmounted target directory is removed.
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.Mkdir(empty, 0o750); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: v.GetVolumeId(), TargetPath: empty}); err != nil || exists(empty) {
		t.Errorf("unpublish of an empty directory: err %v, still there %v", err, exists(empty))
	}
}

func TestNodeUnpublishVolumeInvalidArgument(t *testing.T) {
	e := newEnv(t)
	for _, req := range []*csi.NodeUnpublishVolumeRequest{
		{TargetPath: "/tmp/x"},
		{VolumeId: "vol"},
		{},
	} {
		_, err := e.d.NodeUnpublishVolume(context.Background(), req)
		wantCode(t, err, codes.InvalidArgument)
	}
}

func TestNodeUnpublishVolumeRefusesNonEmptyDirectory(t *testing.T) {
	e := newEnv(t)
	target := filepath.Join(t.TempDir(), "t")
	if err := os.MkdirAll(filepath.Join(target, "sub"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "sub", "file"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := e.d.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: "vol", TargetPath: target})
	wantCode(t, err, codes.FailedPrecondition)
	wantMessageContains(t, err, target)
	if data, err := os.ReadFile(filepath.Join(target, "sub", "file")); err != nil || string(data) != "data" {
		t.Errorf("the directory's content was touched: %q, %v", data, err)
	}
}

func TestNodeGetVolumeStats(t *testing.T) {
	e := newEnv(t)
	v := e.nodeVol(t, "pvc-1")
	target := filepath.Join(t.TempDir(), "t")
	if _, err := e.d.NodePublishVolume(context.Background(), publishReq(v, target, rwo())); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		req  *csi.NodeGetVolumeStatsRequest
		want codes.Code
	}{
		{"no volume ID", &csi.NodeGetVolumeStatsRequest{VolumePath: target}, codes.InvalidArgument},
		{"no path", &csi.NodeGetVolumeStatsRequest{VolumeId: v.GetVolumeId()}, codes.InvalidArgument},
		{"not mounted", &csi.NodeGetVolumeStatsRequest{VolumeId: v.GetVolumeId(), VolumePath: t.TempDir()}, codes.NotFound},
		{"missing path", &csi.NodeGetVolumeStatsRequest{VolumeId: v.GetVolumeId(), VolumePath: filepath.Join(t.TempDir(), "none")}, codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.d.NodeGetVolumeStats(context.Background(), tc.req)
			wantCode(t, err, tc.want)
		})
	}

	resp, err := e.d.NodeGetVolumeStats(context.Background(), &csi.NodeGetVolumeStatsRequest{VolumeId: v.GetVolumeId(), VolumePath: target})
	if err != nil {
		t.Fatal(err)
	}
	units := map[csi.VolumeUsage_Unit]*csi.VolumeUsage{}
	for _, u := range resp.GetUsage() {
		units[u.GetUnit()] = u
	}
	for _, unit := range []csi.VolumeUsage_Unit{csi.VolumeUsage_BYTES, csi.VolumeUsage_INODES} {
		u := units[unit]
		if u == nil {
			t.Errorf("no %v usage in %v", unit, resp.GetUsage())
			continue
		}
		if u.GetTotal() <= 0 || u.GetUsed() < 0 || u.GetAvailable() < 0 || u.GetUsed() > u.GetTotal() {
			t.Errorf("%v usage %v: want Total > 0 and 0 <= Used <= Total", unit, u)
		}
	}
	if len(resp.GetUsage()) != 2 {
		t.Errorf("usage %v, want BYTES and INODES only", resp.GetUsage())
	}
}

func TestNodeGetVolumeHealth(t *testing.T) {
	e := newEnv(t)
	v := e.nodeVol(t, "pvc-1")
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, target := range []string{a, b} {
		if _, err := e.d.NodePublishVolume(context.Background(), publishReq(v, target, rwo())); err != nil {
			t.Fatal(err)
		}
	}
	_, err := e.d.NodeGetVolumeHealth(context.Background(), &csi.NodeGetVolumeHealthRequest{})
	wantCode(t, err, codes.InvalidArgument)

	for _, path := range []string{"", a} {
		resp, err := e.d.NodeGetVolumeHealth(context.Background(), &csi.NodeGetVolumeHealthRequest{VolumeId: v.GetVolumeId(), VolumePublishPath: path})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetVolumeHealth().GetVolumeId() != v.GetVolumeId() || len(resp.GetVolumeHealth().GetHealthStatuses()) != 0 {
			t.Errorf("healthy volume (path %q): %v", path, resp.GetVolumeHealth())
		}
	}

	// A path that is not mounted is reported, with the path.
	notMounted := t.TempDir()
	resp, err := e.d.NodeGetVolumeHealth(context.Background(), &csi.NodeGetVolumeHealthRequest{VolumeId: v.GetVolumeId(), VolumePublishPath: notMounted})
	if err != nil {
		t.Fatal(err)
	}
	st := resp.GetVolumeHealth().GetHealthStatuses()
	if len(st) != 1 || st[0].GetReason() != "NotMounted" || st[0].GetStatus() != csi.VolumeHealthErrorType_INACCESSIBLE {
		t.Fatalf("health of an unmounted path: %v", st)
	}
	if msg := st[0].GetMessage(); !strings.Contains(msg, notMounted) {
		t.Errorf("message %q does not name %s", msg, notMounted)
	}
}

func TestNodePublishVolumeSingleWriterAfterRestart(t *testing.T) {
	e := newEnv(t)
	v := e.nodeVol(t, "pvc-1")
	sw := mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER)
	dir := t.TempDir()
	if _, err := e.d.NodePublishVolume(context.Background(), publishReq(v, filepath.Join(dir, "a"), sw)); err != nil {
		t.Fatal(err)
	}
	// A restarted node plugin has lost its memory of publications; the
	// mount table still shows the first one.
	node, err := New(Config{Mode: ModeNode, NodeID: testNode, Mounter: e.fake, MountHelper: e.helper})
	if err != nil {
		t.Fatal(err)
	}
	_, err = node.NodePublishVolume(context.Background(), publishReq(v, filepath.Join(dir, "b"), sw))
	wantCode(t, err, codes.FailedPrecondition)
	wantMessageContains(t, err, filepath.Join(dir, "a"))
	// The first target itself is still fine to publish again.
	if _, err := node.NodePublishVolume(context.Background(), publishReq(v, filepath.Join(dir, "a"), sw)); err != nil {
		t.Errorf("republish at the first target: %v", err)
	}
}

// A busy mount on a server that answers is left mounted: the unpublish fails
// with FailedPrecondition, says what holds it and what to do, and succeeds on
// the kubelet's retry once the mount is free.
func TestNodeUnpublishVolumeBusy(t *testing.T) {
	e := newEnv(t)
	v := e.nodeVol(t, "pvc-1")
	target := filepath.Join(t.TempDir(), "t")
	if _, err := e.d.NodePublishVolume(context.Background(), publishReq(v, target, rwo())); err != nil {
		t.Fatal(err)
	}
	unpub := &csi.NodeUnpublishVolumeRequest{VolumeId: v.GetVolumeId(), TargetPath: target}
	e.fake.UnmountErr = &nfs.MountBusyError{Target: target}
	_, err := e.d.NodeUnpublishVolume(context.Background(), unpub)
	wantCode(t, err, codes.FailedPrecondition)
	wantMessageContains(t, err, v.GetVolumeId(), target, testNode, "in use", "fuser -vm", "retries")
	if len(e.mountsAt(t, target)) != 1 {
		t.Error("the busy mount is gone")
	}
	if got := e.d.pubs.targetsOf(v.GetVolumeId()); len(got) != 1 {
		t.Errorf("publications after a failed unpublish: %v, want the target still", got)
	}
	e.fake.UnmountErr = nil
	if _, err := e.d.NodeUnpublishVolume(context.Background(), unpub); err != nil {
		t.Fatalf("retry once the mount is free: %v", err)
	}
	if len(e.mountsAt(t, target)) != 0 {
		t.Error("still mounted after the retry")
	}
}
