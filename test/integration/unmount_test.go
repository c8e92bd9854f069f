//go:build uml

package integration

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/example/nfs-csi/pkg/nfs"
)

// holdMount starts a process whose working directory is in target, which
// makes the mount busy, as a leftover shell or backup agent would. The
// returned function ends it; calling it again is harmless.
func holdMount(t *testing.T, target string) func() {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	cmd.Dir = target
	if err := cmd.Start(); err != nil {
		t.Fatalf("start a process in %s: %v", target, err)
	}
	done := false
	release := func() {
		if !done {
			done = true
			_ = cmd.Process.Signal(syscall.SIGKILL)
			_ = cmd.Wait()
		}
	}
	t.Cleanup(release)
	return release
}

// mountsAt counts the mounts stacked at path in the live mount table.
func mountsAt(t *testing.T, path string) int {
	t.Helper()
	mps, err := (&nfs.SystemMounter{}).MountPoints()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mp := range mps {
		if mp.Path == path {
			n++
		}
	}
	return n
}

// A busy mount on a server that answers used to be forced (MNT_FORCE, which
// fails every pending request on the NFS superblock that all mounts of the
// export share) and then detached lazily, and the unpublish reported success
// while a process still wrote into the volume. Now it stays mounted, the call
// fails with FailedPrecondition, and the retry succeeds once it is free.
func TestBusyUnmountOnLiveServerStaysMounted(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v.name, func(t *testing.T) {
			e := startDriver(t, v)
			name := "pvc-busy-" + v.vers
			vol := e.create(name, nil)
			target := e.target(name)
			e.publish(vol, target, rwo, false)
			release := holdMount(t, target)

			_, err := e.node.NodeUnpublishVolume(e.ctx(), &csi.NodeUnpublishVolumeRequest{VolumeId: vol.GetVolumeId(), TargetPath: target})
			wantCode(t, err, codes.FailedPrecondition)
			msg := status.Convert(err).Message()
			for _, want := range []string{vol.GetVolumeId(), target, nodeID, "fuser -vm"} {
				if !strings.Contains(msg, want) {
					t.Errorf("message lacks %q: %s", want, msg)
				}
			}
			if n := mountsAt(t, target); n != 1 {
				t.Fatalf("%d mounts at %s after the refused unmount, want the busy one still there", n, target)
			}
			// Still a working mount: written through it, seen on the server.
			mustWrite(t, filepath.Join(target, "after"), "still mounted")
			if got := mustRead(t, filepath.Join(exportDir(), name, "after")); got != "still mounted" {
				t.Errorf("the server has %q", got)
			}

			release()
			e.unpublish(vol.GetVolumeId(), target)
			if _, ok := mountSource(t, target); ok {
				t.Error("still mounted after the retry")
			}
			e.delete(vol.GetVolumeId())
		})
	}
}

// With nfsd stopped, a busy mount is still taken down (forced, then detached)
// and the unpublish returns, so a pod does not hang in Terminating.
func TestBusyUnmountWithServerDownReturns(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v.name, func(t *testing.T) {
			e := startDriver(t, v)
			name := "pvc-busy-down-" + v.vers
			vol := e.create(name, nil)
			target := e.target(name)
			e.publish(vol, target, rwo, false)
			release := holdMount(t, target)

			restart := stopServer(t)

			// The bound is the call's: the operation timeout (30 s) and less.
			ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
			defer cancel()
			if _, err := e.node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: vol.GetVolumeId(), TargetPath: target}); err != nil {
				t.Fatalf("unpublish of a busy mount with the server down: %v; want it detached", err)
			}
			if _, ok := mountSource(t, target); ok {
				t.Error("target still mounted after unpublish with the server down")
			}
			release()
			restart()
			e.delete(vol.GetVolumeId())
		})
	}
}

// A subDir and a target path with a space or a backslash appear escaped in
// mountinfo (\040, \134). The mount table parser used to keep the escapes:
// a republish of a mounted target answered AlreadyExists (or stacked a second
// mount), and the single-writer check missed the mount.
func TestSpaceInSubDirAndTarget(t *testing.T) {
	sw := mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER)
	for _, v := range versions(t) {
		t.Run(v.name, func(t *testing.T) {
			e := startDriver(t, v)
			name := "pvc-space-" + v.vers
			subDir := `team a/back\slash ` + name
			vol := e.create(name, map[string]string{"subDir": subDir})
			target, spaced := e.target(name), e.target("pod c "+name)
			// A failed run leaves no single writer behind for the next one.
			t.Cleanup(func() {
				for _, p := range []string{target, spaced} {
					_, _ = e.node.NodeUnpublishVolume(context.Background(), &csi.NodeUnpublishVolumeRequest{VolumeId: vol.GetVolumeId(), TargetPath: p})
				}
			})

			// Republish of a mounted target, as after a timed-out first try.
			e.publish(vol, target, sw, false)
			e.publish(vol, target, sw, false)
			if n := mountsAt(t, target); n != 1 {
				t.Errorf("%d mounts at %s after a republish, want 1", n, target)
			}
			mustWrite(t, filepath.Join(target, "f"), "spaced")
			if got := mustRead(t, filepath.Join(exportDir(), filepath.FromSlash(subDir), "f")); got != "spaced" {
				t.Errorf("the server has %q", got)
			}

			// A restarted plugin knows the single writer from the mount
			// table alone.
			restarted := startDriver(t, v)
			other := restarted.target("pod b " + name)
			_, err := restarted.node.NodePublishVolume(e.ctx(), &csi.NodePublishVolumeRequest{
				VolumeId: vol.GetVolumeId(), TargetPath: other, VolumeCapability: sw, VolumeContext: vol.GetVolumeContext(),
			})
			wantCode(t, err, codes.FailedPrecondition)
			e.unpublish(vol.GetVolumeId(), target)

			// A target path with a space: republished, it is one mount.
			e.publish(vol, spaced, rwo, false)
			e.publish(vol, spaced, rwo, false)
			if n := mountsAt(t, spaced); n != 1 {
				t.Errorf("%d mounts at %q after a republish, want 1", n, spaced)
			}
			e.unpublish(vol.GetVolumeId(), spaced)
			if n := mountsAt(t, spaced); n != 0 {
				t.Errorf("%d mounts at %q after unpublish, want 0", n, spaced)
			}
			e.delete(vol.GetVolumeId())
		})
	}
}
