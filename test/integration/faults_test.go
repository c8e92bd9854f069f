//go:build uml

package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// nfsctl drives the guest's NFS server (test/uml/nfsctl.sh).
func nfsctl(t *testing.T, verb string) {
	t.Helper()
	script := os.Getenv("NFSCTL")
	if script == "" {
		t.Fatal("NFSCTL is unset: run through hack/test.sh")
	}
	if out, err := exec.Command(script, verb).CombinedOutput(); err != nil {
		t.Fatalf("nfsctl %s: %v: %s", verb, err, out)
	}
}

// stopServer stops nfsd and returns the function that starts it again, which
// also runs at cleanup; calling it twice is harmless.
func stopServer(t *testing.T) func() {
	t.Helper()
	nfsctl(t, "stop")
	restarted := false
	restart := func() {
		if !restarted {
			restarted = true
			nfsctl(t, "start")
		}
	}
	t.Cleanup(restart)
	return restart
}

// A directory recreated on the server leaves the client with a stale handle;
// health reports it, and publishing again remounts.
func TestStaleHandleIsReportedAndRemounted(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v.name, func(t *testing.T) {
			e := startDriver(t, v)
			name := "pvc-stale-" + v.vers
			vol := e.create(name, nil)
			target := e.target(name)
			e.publish(vol, target, rwo, false)
			dir := filepath.Join(exportDir(), name)
			if err := os.Rename(dir, dir+".old"); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.RemoveAll(dir + ".old"); err != nil {
				t.Fatal(err)
			}

			health, err := e.node.NodeGetVolumeHealth(e.ctx(), &csi.NodeGetVolumeHealthRequest{VolumeId: vol.GetVolumeId(), VolumePublishPath: target})
			if err != nil {
				t.Fatal(err)
			}
			entries := health.GetVolumeHealth().GetHealthStatuses()
			if len(entries) != 1 || entries[0].GetReason() != "StaleFileHandle" || entries[0].GetStatus() != csi.VolumeHealthErrorType_INACCESSIBLE {
				t.Fatalf("health entries = %v, want one INACCESSIBLE StaleFileHandle", entries)
			}

			e.publish(vol, target, rwo, false)
			mustWrite(t, filepath.Join(target, "after"), "remounted")
			if got := mustRead(t, filepath.Join(dir, "after")); got != "remounted" {
				t.Errorf("after remount, export has %q", got)
			}
			e.unpublish(vol.GetVolumeId(), target)
			e.delete(vol.GetVolumeId())
		})
	}
}

// With the NFS server stopped, stats fail fast instead of hanging, and
// unpublish still unmounts, so a pod does not hang in Terminating.
func TestServerDownStatsAndUnpublishReturn(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v.name, func(t *testing.T) {
			e := startDriver(t, v)
			name := "pvc-down-" + v.vers
			vol := e.create(name, nil)
			target := e.target(name)
			e.publish(vol, target, rwo, false)

			restart := stopServer(t)

			_, err := e.node.NodeGetVolumeStats(e.ctx(), &csi.NodeGetVolumeStatsRequest{VolumeId: vol.GetVolumeId(), VolumePath: target})
			if code := status.Code(err); code != codes.Unavailable {
				t.Errorf("stats with the server down: %v, want Unavailable", err)
			}
			e.unpublish(vol.GetVolumeId(), target)
			if _, ok := mountSource(t, target); ok {
				t.Errorf("target still mounted after unpublish with the server down")
			}
			restart()
			e.delete(vol.GetVolumeId())
		})
	}
}

// A mount the server refuses explains itself: server, export, node and
// /etc/exports.
func TestAccessDeniedExplainsItself(t *testing.T) {
	v := versions(t)[0] // NFSv3: mountd answers "access denied" for an unexported path
	e := startDriver(t, v)
	vol := e.create("pvc-denied", nil)
	nfsctl(t, "unexport")
	t.Cleanup(func() { nfsctl(t, "export") })
	_, err := e.node.NodePublishVolume(e.ctx(), &csi.NodePublishVolumeRequest{
		VolumeId: vol.GetVolumeId(), TargetPath: e.target("denied"), VolumeCapability: rwo, VolumeContext: vol.GetVolumeContext(),
	})
	wantCode(t, err, codes.PermissionDenied)
	msg := status.Convert(err).Message()
	for _, want := range []string{"127.0.0.1", v.share, nodeID, "/etc/exports", vol.GetVolumeId()} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q: %s", want, msg)
		}
	}
	nfsctl(t, "export")
	e.delete(vol.GetVolumeId())
}
