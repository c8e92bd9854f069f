//go:build uml

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// setImmutable runs chattr +i or -i on dir, on the server's side of the
// export (tmpfs supports it since Linux 6.0): nfsd then refuses to create
// anything in it, even for a client root that is not squashed.
func setImmutable(t *testing.T, dir string, on bool) {
	t.Helper()
	flag := "-i"
	if on {
		flag = "+i"
	}
	if out, err := exec.Command("chattr", flag, dir).CombinedOutput(); err != nil {
		t.Fatalf("chattr %s %s: %v: %s", flag, dir, err, out)
	}
}

// With the README's own ${pvc.metadata.namespace}/${pvc.metadata.name}
// template and a parent the driver cannot write, a failed CreateVolume used
// to leave its record behind; deleting the Pending PVC and creating it again
// (a new volume name for the same subDir) then got AlreadyExists forever.
func TestFailedCreateLeavesNoRecord(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v.name, func(t *testing.T) {
			e := startDriver(t, v)
			ns := "locked-" + v.vers
			parent := filepath.Join(exportDir(), ns)
			if err := os.Mkdir(parent, 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(parent) })
			setImmutable(t, parent, true)
			t.Cleanup(func() { setImmutable(t, parent, false) })
			params := map[string]string{
				"subDir":                           "${pvc.metadata.namespace}/${pvc.metadata.name}",
				"csi.storage.k8s.io/pvc/namespace": ns,
				"csi.storage.k8s.io/pvc/name":      "data",
			}
			_, err := e.ctrl.CreateVolume(e.ctx(), &csi.CreateVolumeRequest{
				Name: "pvc-first-" + v.vers, Parameters: e.params(params), VolumeCapabilities: []*csi.VolumeCapability{rwo},
			})
			if err == nil {
				t.Fatal("CreateVolume under an immutable parent succeeded")
			}
			t.Logf("CreateVolume under an immutable parent: %v", err)

			// The admin fixes the parent; the user recreates the PVC.
			setImmutable(t, parent, false)
			vol := e.create("pvc-second-"+v.vers, params)
			if _, err := os.Stat(filepath.Join(parent, "data")); err != nil {
				t.Fatalf("the recreated claim's directory: %v", err)
			}
			e.delete(vol.GetVolumeId())
		})
	}
}

// controllerProcess starts bin/nfs-csi as a controller of its own, with its
// own --workdir (so its own share mounts), as a second replica would run.
func controllerProcess(t *testing.T, name string) csi.ControllerClient {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(filepath.Dir(exe), "..", "bin", "nfs-csi")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the driver binary (built by hack/uml-artifacts.sh): %v", err)
	}
	dir, err := os.MkdirTemp("/tmp", "replica-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "csi.sock")
	logFile, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--mode=controller", "--endpoint=unix://"+sock, "--workdir="+filepath.Join(dir, "work"), "--v=1")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		logFile.Close()
		if t.Failed() {
			if b, err := os.ReadFile(logFile.Name()); err == nil {
				t.Logf("replica %s log:\n%s", name, b)
			}
		}
		os.RemoveAll(dir)
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s did not listen on %s", name, sock)
		}
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return csi.NewControllerClient(conn)
}

// Two controller replicas (two processes, each with its own share mount of
// the same export and its own locks) racing for one subdirectory under two
// names end with exactly one owner: one CreateVolume succeeds, the other gets
// AlreadyExists, and there is one record.
func TestTwoReplicasRaceForOneSubDir(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v.name, func(t *testing.T) {
			e := &env{t: t, v: v}
			replicas := []csi.ControllerClient{controllerProcess(t, "a-"+v.vers), controllerProcess(t, "b-"+v.vers)}
			for round := range 50 {
				subDir := fmt.Sprintf("race-%s-%02d", v.vers, round)
				params := e.params(map[string]string{"subDir": subDir})
				var wg sync.WaitGroup
				resps := make([]*csi.CreateVolumeResponse, 2)
				errs := make([]error, 2)
				start := make(chan struct{})
				for i, c := range replicas {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						resps[i], errs[i] = c.CreateVolume(e.ctx(), &csi.CreateVolumeRequest{
							Name: fmt.Sprintf("pvc-%d-%s", i, subDir), Parameters: params, VolumeCapabilities: []*csi.VolumeCapability{rwo},
						})
					}()
				}
				close(start)
				wg.Wait()
				winner := -1
				for i, err := range errs {
					switch status.Code(err) {
					case codes.OK:
						if winner >= 0 {
							t.Fatalf("round %d: both replicas created %s", round, subDir)
						}
						winner = i
					case codes.AlreadyExists:
					default:
						t.Fatalf("round %d: replica %d: %v, want OK or AlreadyExists", round, i, err)
					}
				}
				if winner < 0 {
					t.Fatalf("round %d: neither replica created %s: %v", round, subDir, errs)
				}
				var owners []string
				for _, r := range volumeRecords(t) {
					if strings.Contains(r, `"pvc-0-`+subDir+`"`) || strings.Contains(r, `"pvc-1-`+subDir+`"`) {
						owners = append(owners, r)
					}
				}
				if len(owners) != 1 || !strings.Contains(owners[0], fmt.Sprintf(`"pvc-%d-%s"`, winner, subDir)) {
					t.Fatalf("round %d: records %q, want one, of replica %d's volume", round, owners, winner)
				}
				if _, err := replicas[1-winner].DeleteVolume(e.ctx(), &csi.DeleteVolumeRequest{VolumeId: resps[winner].GetVolume().GetVolumeId()}); err != nil {
					t.Fatalf("round %d: DeleteVolume through the other replica: %v", round, err)
				}
			}
		})
	}
}
