// Command demo walks the CSI lifecycle of nfs-csi against a real kernel NFS
// server, inside the UML guest of test/uml/run.sh (see hack/demo.sh): it
// plays the parts of csi-provisioner and the kubelet and shows the export
// after every step.
package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func main() {
	driverBin := flag.String("driver", "bin/nfs-csi", "driver binary")
	flag.Parse()
	server, share, export := os.Getenv("NFS_SERVER"), os.Getenv("NFS_SHARE_V4"), os.Getenv("NFS_EXPORT_DIR")
	if server == "" || export == "" {
		die("run inside test/uml/run.sh")
	}
	work, err := os.MkdirTemp("/tmp", "demo-")
	check(err)
	sock := filepath.Join(work, "csi.sock")
	driver := exec.Command(*driverBin, "--endpoint", "unix://"+sock, "--nodeid", "demo-node", "--workdir", filepath.Join(work, "driver"), "-v=0")
	logPath := filepath.Join(os.Getenv("UML_RESULTS_DIR"), "demo-driver.log")
	logFile, err := os.Create(logPath)
	check(err)
	defer logFile.Close()
	driver.Stderr = logFile
	check(driver.Start())
	defer func() { _ = driver.Process.Kill(); _ = driver.Wait() }()
	for i := 0; i < 100 && !exists(sock); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	check(err)
	ident, ctrl, node := csi.NewIdentityClient(conn), csi.NewControllerClient(conn), csi.NewNodeClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	info, err := ident.GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
	check(err)
	step("driver %s %s is serving on %s; the kernel nfsd exports %s to %s", info.GetName(), info.GetVendorVersion(), sock, export, server)

	params := map[string]string{
		"server": server, "share": share, "mountOptions": "vers=4.1",
		"subDir":   "${pvc.metadata.namespace}/${pvc.metadata.name}",
		"onDelete": "archive",
		// csi-provisioner --extra-create-metadata adds these:
		"csi.storage.k8s.io/pvc/namespace": "shop",
		"csi.storage.k8s.io/pvc/name":      "data-postgres-0",
		"csi.storage.k8s.io/pv/name":       "pvc-5f1c2a",
	}
	step("CreateVolume pvc-5f1c2a with StorageClass parameters subDir=%s onDelete=archive", params["subDir"])
	capability := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
	created, err := ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{
		Name: "pvc-5f1c2a", Parameters: params, VolumeCapabilities: []*csi.VolumeCapability{capability},
		CapacityRange: &csi.CapacityRange{RequiredBytes: 1 << 30},
	})
	check(err)
	vol := created.GetVolume()
	fmt.Printf("   volume ID (the PV's volumeHandle): %s\n   volume context: %v\n", vol.GetVolumeId(), vol.GetVolumeContext())
	showExport(export)

	target := filepath.Join(work, "kubelet/pods/1234/volumes/kubernetes.io~csi/pvc-5f1c2a/mount")
	step("NodePublishVolume at %s (what the kubelet asks for)", target)
	_, err = node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{
		VolumeId: vol.GetVolumeId(), TargetPath: target, VolumeCapability: capability, VolumeContext: vol.GetVolumeContext(),
	})
	check(err)
	showMount(target)

	step("the pod writes %s/PG_VERSION", target)
	check(os.WriteFile(filepath.Join(target, "PG_VERSION"), []byte("17\n"), 0o644))
	showExport(export)

	stats, err := node.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: vol.GetVolumeId(), VolumePath: target})
	check(err)
	for _, u := range stats.GetUsage() {
		fmt.Printf("   NodeGetVolumeStats %-6s total=%d used=%d available=%d\n", u.GetUnit(), u.GetTotal(), u.GetUsed(), u.GetAvailable())
	}

	step("NodeUnpublishVolume (the pod is deleted)")
	_, err = node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: vol.GetVolumeId(), TargetPath: target})
	check(err)
	showMount(target)

	step("DeleteVolume (the PVC is deleted; the class says onDelete=archive)")
	_, err = ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: vol.GetVolumeId()})
	check(err)
	showExport(export)
	step("done: the data survives under an archive name that can never collide with an earlier archive")
	fmt.Printf("   the driver's log: %s\n", logPath)
}

var stepNo int

func step(format string, args ...any) {
	stepNo++
	fmt.Printf("\n[%d] %s\n", stepNo, fmt.Sprintf(format, args...))
}

func showExport(export string) {
	fmt.Printf("   on the NFS server, %s:\n", export)
	_ = filepath.WalkDir(export, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == export {
			return err
		}
		rel := strings.TrimPrefix(p, export+"/")
		if strings.HasPrefix(rel, ".nfs-csi") {
			if d.IsDir() && rel == ".nfs-csi" {
				fmt.Printf("     .nfs-csi/            (the driver's creation records)\n")
			}
			return nil
		}
		suffix := ""
		if d.IsDir() {
			suffix = "/"
		} else if data, err := os.ReadFile(p); err == nil {
			suffix = fmt.Sprintf("  = %q", strings.TrimSpace(string(data)))
		}
		fmt.Printf("     %s%s%s\n", strings.Repeat("  ", strings.Count(rel, "/")), filepath.Base(rel), suffix)
		return nil
	})
}

func showMount(target string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	check(err)
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == target {
			for i, x := range f {
				if x == "-" && i+2 < len(f) {
					fmt.Printf("   mounted: %s on %s type %s\n", f[i+2], target, f[i+1])
				}
			}
			return
		}
	}
	fmt.Printf("   %s is not mounted (target exists: %v)\n", target, exists(target))
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func check(err error) {
	if err != nil {
		die(err.Error())
	}
}

func die(msg string) {
	fmt.Fprintln(os.Stderr, "demo:", msg)
	os.Exit(1)
}
