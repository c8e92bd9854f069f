//go:build uml

package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/example/nfs-csi/pkg/agent"
	"github.com/example/nfs-csi/pkg/driver"
)

// agentSecrets is what the StorageClass's provisioner and controller-expand
// secrets hold for the agent: a client certificate its CA signed.
func agentSecrets(t *testing.T, a *runningAgent) map[string]string {
	t.Helper()
	secrets, err := a.a.Secrets()
	if err != nil {
		t.Fatal(err)
	}
	return secrets
}

// volumeStats calls NodeGetVolumeStats as the kubelet does and returns the
// bytes usage and the source header.
func (e *env) volumeStats(id, target string) (*csi.VolumeUsage, string) {
	e.t.Helper()
	var md metadata.MD
	resp, err := e.node.NodeGetVolumeStats(e.ctx(), &csi.NodeGetVolumeStatsRequest{VolumeId: id, VolumePath: target}, grpc.Header(&md))
	if err != nil {
		e.t.Fatal(err)
	}
	var src string
	if v := md.Get(driver.UsageSourceHeader); len(v) > 0 {
		src = v[0]
	}
	for _, u := range resp.GetUsage() {
		if u.GetUnit() == csi.VolumeUsage_BYTES {
			return u, src
		}
	}
	e.t.Fatalf("no BYTES usage in %v", resp)
	return nil, ""
}

// sizedReq is the CreateVolumeRequest of a volume of size bytes with the
// class's params and secrets.
func sizedReq(name string, size int64, params, secrets map[string]string) *csi.CreateVolumeRequest {
	return &csi.CreateVolumeRequest{Name: name, Parameters: params, Secrets: secrets,
		CapacityRange: &csi.CapacityRange{RequiredBytes: size}, VolumeCapabilities: []*csi.VolumeCapability{rwo}}
}

// createSized creates a volume of size bytes and fails the test if that fails.
func (e *env) createSized(name string, size int64, params, secrets map[string]string) *csi.Volume {
	e.t.Helper()
	resp, err := e.ctrl.CreateVolume(e.ctx(), sizedReq(name, size, params, secrets))
	if err != nil {
		e.t.Fatalf("CreateVolume %s: %v", name, err)
	}
	return resp.GetVolume()
}

// walkedStats calls NodeGetVolumeStats of an unenforced volume until its
// figures come from the walk of its directory ("share" until the first
// walk ends) and returns them.
func (e *env) walkedStats(id, target string) *csi.VolumeUsage {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		u, src := e.volumeStats(id, target)
		if src == "walk" {
			return u
		}
		if src != "share" || time.Now().After(deadline) {
			e.t.Fatalf("stats source %q (usage %v), want \"share\" until the walk ends, then \"walk\"", src, u)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// deleteRetried calls DeleteVolume as csi-provisioner does, retrying
// failures for up to 30 seconds: in one CI run the first delete of an
// enforced volume met "rmdir: directory not empty" right after its writes
// had hit the quota (an entry that reappeared during the delete, seemingly
// the client's silly-rename of a file whose failed writeback it still
// held: the controller's and the test's mounts share one NFS client here).
// Such a file is now reported as busy (FailedPrecondition naming the
// .nfsXXXX file, TestRegressionRemoveTreeAtSillyRenameDuringRemoval); the
// retry is what a cluster does, and it must then succeed.
func (e *env) deleteRetried(id string, secrets map[string]string) {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := e.ctrl.DeleteVolume(e.ctx(), &csi.DeleteVolumeRequest{VolumeId: id, Secrets: secrets})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatal(err)
		}
		e.t.Logf("DeleteVolume %s, retried: %v", id, err)
		time.Sleep(time.Second)
	}
}

// openToNobody lets the unprivileged writer reach a target: the test's
// directories are 0700 and the driver makes the target's parents 0750.
func openToNobody(t *testing.T, e *env, target string) {
	t.Helper()
	for p := filepath.Dir(target); strings.HasPrefix(p, e.dir); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// TestEnforcedVolumeThroughTheDriver is the whole path on a real XFS export
// over NFSv4.2: a class with capacity: enforced gets a volume whose mount
// shows its size and stops writes past it, expands online, reports its own
// usage beside an unenforced neighbour, and gives its project ID back when
// deleted; with the agent stopped, CreateVolume fails with a retryable
// code naming it and creates nothing.
func TestEnforcedVolumeThroughTheDriver(t *testing.T) {
	q, a, _, _ := quotaBed(t, "xfs")
	e := startDriver(t, nfsVersion{"nfs4.2", "4.2", q.v4Share})
	secrets := agentSecrets(t, a)
	enforced := e.params(map[string]string{driver.ParamCapacity: driver.CapacityEnforced, driver.ParamQuotaAgent: a.addr, "mountPermissions": "0777"})
	vol := e.createSized("pvc-enforced", 32*mib, enforced, secrets)
	target := e.target("enforced")
	e.publish(vol, target, rwo, false)
	openToNobody(t, e, target)
	if got := statfsTotal(t, target); got != 32*mib {
		t.Errorf("df of the published volume: %d bytes, want its 32 MiB", got)
	}
	if u, src := e.volumeStats(vol.GetVolumeId(), target); u.GetTotal() != 32*mib || src != "quota" {
		t.Errorf("NodeGetVolumeStats = %v from %q, want a total of 32 MiB from the quota", u, src)
	}
	if out, err := writeAsNobody(filepath.Join(target, "big"), 48); err == nil || !strings.Contains(out, quotaWriteError["xfs"]) {
		t.Fatalf("writing 48 MiB into the 32 MiB volume: %v\n%s", err, out)
	}

	exp, err := e.ctrl.ControllerExpandVolume(e.ctx(), &csi.ControllerExpandVolumeRequest{
		VolumeId: vol.GetVolumeId(), CapacityRange: &csi.CapacityRange{RequiredBytes: 64 * mib}, Secrets: secrets, VolumeCapability: rwo})
	if err != nil {
		t.Fatal(err)
	}
	if exp.GetCapacityBytes() != 64*mib || exp.GetNodeExpansionRequired() {
		t.Errorf("ControllerExpandVolume = %v, want 64 MiB and no node expansion", exp)
	}
	if got := statfsTotal(t, target); got != 64*mib {
		t.Errorf("df after the expansion: %d bytes, want 64 MiB without a remount", got)
	}
	if out, err := writeAsNobody(filepath.Join(target, "more"), 16); err != nil {
		t.Errorf("writing 16 MiB after the expansion: %v\n%s", err, out)
	}

	// A neighbour without enforcement reports its own usage from the walk.
	plain := e.createSized("pvc-plain", 16*mib, e.params(map[string]string{"mountPermissions": "0777"}), secrets)
	ptarget := e.target("plain")
	e.publish(plain, ptarget, rwo, false)
	openToNobody(t, e, ptarget)
	if out, err := writeAsNobody(filepath.Join(ptarget, "small"), 1); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if u := e.walkedStats(plain.GetVolumeId(), ptarget); u.GetUsed() < mib || u.GetUsed() > 2*mib || u.GetTotal() != 16*mib {
		t.Errorf("the unenforced volume's stats: %v, want about 1 MiB used of its 16 MiB, not its neighbour's 48", u)
	}

	id, _, err := agent.ProjectOf(filepath.Join(q.dir, "pvc-enforced"))
	if err != nil || id == 0 {
		t.Fatalf("the enforced volume's directory has project %d (%v)", id, err)
	}
	e.unpublish(vol.GetVolumeId(), target)
	e.unpublish(plain.GetVolumeId(), ptarget)
	e.deleteRetried(vol.GetVolumeId(), secrets)
	e.deleteRetried(plain.GetVolumeId(), secrets)
	if qt, err := agent.QuotaOf(q.dir, id); err != nil || qt.LimitBytes != 0 {
		t.Errorf("after DeleteVolume project %d has %+v (%v), want no limit", id, qt, err)
	}
	if entries, err := os.ReadDir(filepath.Join(q.dir, agent.ProjectDir)); err != nil || len(entries) != 0 {
		t.Errorf("project IDs still assigned after DeleteVolume: %v (%v)", entries, err)
	}

	a.stop(t)
	before := treeSnapshot(t, q.dir)
	_, err = e.ctrl.CreateVolume(e.ctx(), sizedReq("pvc-later", 8*mib, enforced, secrets))
	wantCode(t, err, codes.Unavailable)
	if !strings.Contains(err.Error(), a.addr) {
		t.Errorf("the error %v does not name the agent %s", err, a.addr)
	}
	if after := treeSnapshot(t, q.dir); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Errorf("CreateVolume with the agent stopped changed the export:\n%v\n%v", before, after)
	}
	a.start(t)
	resp, err := e.ctrl.CreateVolume(e.ctx(), sizedReq("pvc-later", 8*mib, enforced, secrets))
	if err != nil {
		t.Fatalf("CreateVolume once the agent is back: %v", err)
	}
	if _, err := e.ctrl.DeleteVolume(e.ctx(), &csi.DeleteVolumeRequest{VolumeId: resp.GetVolume().GetVolumeId(), Secrets: secrets}); err != nil {
		t.Fatal(err)
	}
}
