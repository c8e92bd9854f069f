//go:build e2e

// Command demo shows nfs-csi in the Kubernetes flow, on the bed of the
// end-to-end tests (test/e2e/framework), inside the UML guest that
// hack/demo.sh boots: a real control plane with the chart's objects, the
// driver behind the real csi-provisioner and csi-attacher, a PVC that goes
// Bound, a pod whose volume is attached and published, a file written through
// the mount and seen on the NFS server, and the cleanup.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/mount-utils"

	"github.com/example/nfs-csi/test/e2e/framework"
)

const (
	namespace = "demo"
	claimName = "web-data"
	podName   = "web"
	nodeName  = "node-1"
	class     = "nfs-delete"
	fileName  = "hello.txt"
	timeout   = 2 * time.Minute
)

func main() {
	os.Exit(run())
}

func run() int {
	export := os.Getenv("NFS_EXPORT_DIR")
	if export == "" {
		fmt.Fprintln(os.Stderr, "demo: run it with make demo (hack/demo.sh)")
		return 2
	}
	cfg, err := framework.ConfigFromEnv("demo")
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	d := &demo{start: time.Now(), export: export}

	d.step("control plane: etcd, kube-apiserver, kube-controller-manager; the chart; the controller plugin")
	bed, err := framework.StartBed(ctx, cfg, "demo", 2379)
	if err != nil {
		return d.fail(err, cfg.LogDir)
	}
	defer bed.Stop()
	if err := d.cluster(bed); err != nil {
		return d.fail(err, cfg.LogDir)
	}
	if err := d.flow(ctx, bed); err != nil {
		return d.fail(err, cfg.LogDir)
	}
	fmt.Printf("\ndone in %s. Component logs: %s\n", secs(time.Since(d.start)), cfg.LogDir)
	return 0
}

// cluster reports the control plane that answers and the chart objects applied.
func (d *demo) cluster(bed *framework.Bed) error {
	ver, err := bed.Cluster.Client.Discovery().ServerVersion()
	if err != nil {
		return err
	}
	d.done("Kubernetes %s serving at %s (no kubelet, no scheduler, no container runtime)", ver.GitVersion, bed.Cluster.APIServerURL())
	fmt.Printf("     chart objects applied (helm template charts/nfs-csi --values test/e2e/values.yaml):\n")
	for _, obj := range bed.Installed {
		fmt.Printf("       %s\n", obj)
	}
	fmt.Printf("     running from the chart's Deployment arguments: nfs-csi (controller, --cluster-id %s),\n", bed.ClusterID)
	fmt.Printf("       %s and %s as ServiceAccount %s/%s\n",
		framework.ProvisionerName, framework.AttacherName, framework.ChartNamespace, framework.ControllerSA)
	return nil
}

func (d *demo) flow(ctx context.Context, bed *framework.Bed) error {
	c := bed.Cluster.Client

	d.step("Node %s joins; PVC %s/%s is created with StorageClass %s", nodeName, namespace, claimName, class)
	node, err := bed.AddNode(ctx, nodeName)
	if err != nil {
		return err
	}
	d.done("Node %s and its CSINode registered; the node plugin runs with the chart's DaemonSet arguments", nodeName)
	sc, err := c.StorageV1().StorageClasses().Get(ctx, class, metav1.GetOptions{})
	if err != nil {
		return err
	}
	fmt.Printf("     StorageClass %s: provisioner %s, subDir %s, onDelete %s, mountOptions %v\n",
		sc.Name, sc.Provisioner, sc.Parameters["subDir"], sc.Parameters["onDelete"], sc.MountOptions)
	if err := bed.CreateNamespace(ctx, namespace); err != nil {
		return err
	}
	if _, err := c.CoreV1().PersistentVolumeClaims(namespace).Create(ctx, claim(), metav1.CreateOptions{}); err != nil {
		return err
	}
	pv, err := bed.WaitClaimBound(ctx, namespace, claimName, timeout)
	if err != nil {
		return err
	}
	d.done("PVC %s/%s is Bound (csi-provisioner called CreateVolume)", namespace, claimName)
	fmt.Printf("     PV:           %s\n", pv.Name)
	fmt.Printf("     volumeHandle: %s\n", pv.Spec.CSI.VolumeHandle)
	if events, err := bed.Events(ctx, namespace, "PersistentVolumeClaim", claimName); err == nil {
		var reasons []string
		for _, e := range events {
			reasons = append(reasons, e.Reason)
		}
		fmt.Printf("     PVC events:   %s\n", strings.Join(reasons, ", "))
	}
	dir := filepath.Join(d.export, namespace, claimName)
	fmt.Printf("     on the NFS server: %s/ %s\n", dir, existence(dir))

	d.step("pod %s/%s on %s uses the claim", namespace, podName, nodeName)
	pod, err := node.RunPod(ctx, namespace, podName, claimName)
	if err != nil {
		return err
	}
	va, err := bed.FindAttachment(ctx, pv.Name, nodeName)
	if err != nil {
		return err
	}
	target := pod.Mounts[claimName]
	d.done("volume attached and published")
	if va != nil {
		fmt.Printf("     VolumeAttachment %s: attached=%v (attach/detach controller -> csi-attacher -> ControllerPublishVolume)\n", va.Name, va.Status.Attached)
	}
	fmt.Printf("     NodePublishVolume, as the kubelet calls it, mounted:\n       %s\n", mountOf(target))

	d.step("the pod writes %s through the mount", fileName)
	content := fmt.Sprintf("hello from pod %s/%s on %s\n", namespace, podName, nodeName)
	if err := os.WriteFile(filepath.Join(target, fileName), []byte(content), 0o644); err != nil {
		return fmt.Errorf("write through the mount: %w", err)
	}
	onServer := filepath.Join(dir, fileName)
	got, err := os.ReadFile(onServer)
	if err != nil {
		return fmt.Errorf("on the NFS server: %w", err)
	}
	d.done("written through the mount above (in the pod's container: /data/%s/%s)", claimName, fileName)
	fmt.Printf("     on the NFS server: %s\n       %q\n", onServer, strings.TrimSpace(string(got)))

	d.step("cleanup: the pod stops, the volume detaches, the PVC is deleted")
	if err := node.StopPod(ctx, pod); err != nil {
		return err
	}
	if err := bed.WaitDetached(ctx, pv.Name, nodeName, timeout); err != nil {
		return fmt.Errorf("PV %s still attached to %s: %w", pv.Name, nodeName, err)
	}
	d.done("pod gone: NodeUnpublishVolume; VolumeAttachment deleted (ControllerUnpublishVolume)")
	if err := c.CoreV1().PersistentVolumeClaims(namespace).Delete(ctx, claimName, metav1.DeleteOptions{}); err != nil {
		return err
	}
	if err := bed.WaitPVGone(ctx, pv.Name, timeout); err != nil {
		return err
	}
	d.done("PV %s deleted (csi-provisioner called DeleteVolume)", pv.Name)
	fmt.Printf("     on the NFS server: %s/ %s (onDelete=%s)\n", dir, existence(dir), sc.Parameters["onDelete"])
	return nil
}

func claim() *corev1.PersistentVolumeClaim {
	sc := class
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: claimName, Namespace: namespace},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: &sc,
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceStorage: resource.MustParse("1Gi"),
			}},
		},
	}
}

// demo prints numbered steps and what each brought, with the time it took.
type demo struct {
	start, stepStart, last time.Time
	stepNo                 int
	export                 string
}

func (d *demo) step(format string, args ...any) {
	d.stepNo++
	d.stepStart, d.last = time.Now(), time.Now()
	fmt.Printf("\n[%d] %s\n", d.stepNo, fmt.Sprintf(format, args...))
}

// done reports an outcome and the time since the step's start or the
// previous outcome.
func (d *demo) done(format string, args ...any) {
	fmt.Printf("     %s  (%s)\n", fmt.Sprintf(format, args...), secs(time.Since(d.last)))
	d.last = time.Now()
}

func (d *demo) fail(err error, logDir string) int {
	fmt.Fprintf(os.Stderr, "\ndemo: step %d failed after %s: %v\ncomponent logs: %s\n", d.stepNo, secs(time.Since(d.stepStart)), err, logDir)
	return 1
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

func existence(dir string) string {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return "exists"
	}
	return "is gone"
}

// mountOf describes the mount at target from the guest's mount table.
func mountOf(target string) string {
	infos, err := mount.ParseMountInfo("/proc/self/mountinfo")
	if err != nil {
		return err.Error()
	}
	for _, mi := range infos {
		if mi.MountPoint != target {
			continue
		}
		opts := ""
		for _, o := range mi.SuperOptions {
			if strings.HasPrefix(o, "vers=") {
				opts = " (" + o + ")"
			}
		}
		return fmt.Sprintf("%s on %s type %s%s", mi.Source, target, mi.FsType, opts)
	}
	return target + " is not a mount point"
}
