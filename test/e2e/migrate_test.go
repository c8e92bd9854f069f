//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// nfsCSI runs the driver's binary as an admin would, and returns its stdout;
// wantFail says the command is expected to refuse, with stderr containing it.
func nfsCSI(t *testing.T, wantFail string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(cfg.Driver, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	switch {
	case wantFail == "" && err != nil:
		t.Fatalf("nfs-csi %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	case wantFail != "" && err == nil:
		t.Fatalf("nfs-csi %s succeeded, want a refusal with %q:\n%s", strings.Join(args, " "), wantFail, out)
	case wantFail != "" && !strings.Contains(stderr.String(), wantFail):
		t.Fatalf("nfs-csi %s: %v, stderr does not say %q:\n%s", strings.Join(args, " "), err, wantFail, stderr.String())
	}
	return string(out)
}

// Scenario: a static NFS directory with data (an admin's hand-made in-tree
// volume, as in seed 002) is imported: the generated PV and PVC bind, a pod
// reads the data through the driver, another import of it or of the share
// root is refused, and deleting the claim with reclaim policy Delete leaves
// the data, because the record says adopted.
func TestImportExistingDirectory(t *testing.T) {
	ctx := testContext(t)
	ns := namespace(t, ctx, bed, "import")
	if err := os.MkdirAll(onExport("static/app"), 0o777); err != nil {
		t.Fatal(err)
	}
	writeFile(t, onExport("static/app/index.html"), "hand-made data\n")
	common := []string{"import", "--server", "127.0.0.1", "--share", "/run/export", "--mount-options", "nfsvers=3",
		"--share-mounted-at", exportDir, "--cluster-id", bed.ClusterID}

	// Refusals first: nothing may be written for them.
	nfsCSI(t, "root of share /run/export", nil, append(common, "--subdir", "/run/export", "--claim", ns+"/root")...)
	nfsCSI(t, "outside the share /run/export", nil, append(common, "--subdir", "/etc", "--claim", ns+"/etc")...)
	nfsCSI(t, "does not exist", nil, append(common, "--subdir", "static/missing", "--claim", ns+"/missing")...)

	doc := nfsCSI(t, "", nil, append(common, "--subdir", "/run/export/static/app", "--claim", ns+"/app", "--reclaim-policy", "Delete")...)
	t.Logf("nfs-csi import wrote:\n%s", doc)
	kubectlApply(t, bed.Cluster, "import-app", doc)
	pv, err := bed.WaitClaimBound(ctx, ns, "app", bindTimeout)
	if err != nil {
		t.Fatalf("%v; events: %s", err, bed.EventSummary(ctx, ns, "PersistentVolumeClaim", "app"))
	}
	if pv.Name != ns+"-app" || pv.Spec.CSI == nil || pv.Spec.CSI.VolumeHandle != "v1#retain#127.0.0.1#/run/export#static/app#nfsvers=3" {
		t.Errorf("bound to PV %s %+v", pv.Name, pv.Spec.CSI)
	}
	reader := runPod(t, ctx, nodeA, ns, "reader", "app")
	if got := readFile(t, filepath.Join(reader.Mounts["app"], "index.html")); got != "hand-made data\n" {
		t.Errorf("the pod reads %q", got)
	}

	// The directory is a live volume now: importing it again under another
	// name, or a directory inside it, is refused; so is a claim of a class
	// that would make the same directory.
	nfsCSI(t, `belongs to volume "`+ns+`-app"`, nil, append(common, "--subdir", "static/app", "--claim", ns+"/again")...)
	if err := os.MkdirAll(onExport("static/app/inner"), 0o777); err != nil {
		t.Fatal(err)
	}
	nfsCSI(t, "would lie inside the directory static/app", nil, append(common, "--subdir", "static/app/inner", "--claim", ns+"/inner")...)

	stopPod(t, ctx, nodeA, reader)
	if err := bed.WaitDetached(ctx, pv.Name, nodeA.Name, time.Minute); err != nil {
		t.Error(err)
	}
	deleteClaim(t, ctx, bed, ns, "app")
	if err := bed.WaitPVGone(ctx, pv.Name, deleteTimeout); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, onExport("static/app/index.html")); got != "hand-made data\n" {
		t.Errorf("after the claim and its Delete PV went: %q", got)
	}
}

// oldProvisioner is the name nfs-subdir-external-provisioner's Helm chart
// registers; nothing serves it in the bed, as after the provisioner broke.
const oldProvisioner = "cluster.local/nfs-subdir-external-provisioner"

// Scenario, issue 12: objects shaped as nfs-subdir-external-provisioner
// v4.0.2 leaves them (its class, a bound claim, an in-tree nfs: PV annotated
// pv.kubernetes.io/provisioned-by, data in <namespace>-<claim>-<pv> on the
// export) are migrated with the script nfs-csi migrate writes; a pod then
// reads the old data through the driver, a new claim of the class is
// provisioned by the driver, and deleting the migrated claim archives its
// directory as the class said.
func TestMigrateFromNFSSubdir(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	c := bed.Cluster.Client
	ns := namespace(t, ctx, bed, "legacy")

	// What the old provisioner left: its class (chart defaults, archiveOnDelete true),
	// a claim, and the PV it made for the claim.
	del, immediate, expand := corev1.PersistentVolumeReclaimDelete, storagev1.VolumeBindingImmediate, true
	if _, err := c.StorageV1().StorageClasses().Create(ctx, &storagev1.StorageClass{
		ObjectMeta:  metav1.ObjectMeta{Name: "nfs-client", Labels: map[string]string{"app": "nfs-subdir-external-provisioner", "chart": "nfs-subdir-external-provisioner-4.0.2"}},
		Provisioner: oldProvisioner, Parameters: map[string]string{"archiveOnDelete": "true"},
		ReclaimPolicy: &del, VolumeBindingMode: &immediate, AllowVolumeExpansion: &expand, MountOptions: []string{"nfsvers=3"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	createClaim(t, ctx, bed, claim(ns, "www", "nfs-client", corev1.ReadWriteMany))
	pvc, err := c.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "www", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pvName := "pvc-" + string(pvc.UID)
	dir := ns + "-www-" + pvName
	if err := os.MkdirAll(onExport(dir), 0o777); err != nil {
		t.Fatal(err)
	}
	writeFile(t, onExport(dir+"/index.html"), "written under nfs-subdir-external-provisioner\n")
	if _, err := c.CoreV1().PersistentVolumes().Create(ctx, &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: pvName, Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": oldProvisioner}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              "nfs-client",
			MountOptions:                  []string{"nfsvers=3"},
			ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: ns, Name: "www", UID: pvc.UID},
			PersistentVolumeSource:        corev1.PersistentVolumeSource{NFS: &corev1.NFSVolumeSource{Server: "127.0.0.1", Path: "/run/export/" + dir}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got, err := bed.WaitClaimBound(ctx, ns, "www", bindTimeout); err != nil || got.Name != pvName || got.Spec.NFS == nil {
		t.Fatalf("the old claim did not bind to its in-tree PV %s: %v", pvName, err)
	}

	// The admin's steps: save the objects, generate, read, run.
	old := filepath.Join(cfg.Dir, "migrate-old.json")
	if err := os.WriteFile(old, []byte(kubectl(t, bed.Cluster, "get", "pv,pvc,sc", "-A", "-o", "json")), 0o644); err != nil {
		t.Fatal(err)
	}
	script := nfsCSI(t, "", nil, "migrate", "--from", old, "--share-mounted-at", exportDir, "--cluster-id", bed.ClusterID)
	t.Logf("switch-over script:\n%s", script)
	for _, want := range []string{"retire_pv " + pvName, "subDir: ${pvc.metadata.namespace}-${pvc.metadata.name}-${pv.metadata.name}", "onDelete: archive", "uid: " + string(pvc.UID)} {
		if !strings.Contains(script, want) {
			t.Errorf("the script lacks %q", want)
		}
	}
	scriptPath := filepath.Join(cfg.Dir, "switch-over.sh")
	if err := os.WriteFile(scriptPath, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	runScript := func(wantFail string) {
		t.Helper()
		cmd := exec.Command("sh", scriptPath)
		cmd.Env = append(os.Environ(), "KUBECTL="+cfg.Bins.Kubectl+" --kubeconfig "+bed.Cluster.AdminKubeconfig)
		out, err := cmd.CombinedOutput()
		t.Logf("sh switch-over.sh:\n%s", out)
		if wantFail == "" && err != nil {
			t.Fatalf("the script failed: %v", err)
		}
		if wantFail != "" && (err == nil || !strings.Contains(string(out), wantFail)) {
			t.Fatalf("the script = %v, want it to stop with %q", err, wantFail)
		}
	}

	// A pod still uses the claim (the workload was not scaled down): the
	// script stops before it touches the claim's PV.
	if _, err := nodeA.CreatePod(ctx, ns, "old-web", "www"); err != nil {
		t.Fatal(err)
	}
	runScript("still used by pod(s) old-web")
	if pv, err := c.CoreV1().PersistentVolumes().Get(ctx, pvName, metav1.GetOptions{}); err != nil || pv.Spec.NFS == nil {
		t.Fatalf("the old PV after the stopped script: %v", err)
	}
	if err := bed.ForceDeletePod(ctx, ns, "old-web"); err != nil {
		t.Fatal(err)
	}
	if err := waitPodGone(ctx, ns, "old-web"); err != nil {
		t.Fatal(err)
	}
	runScript("")

	pv, err := bed.WaitClaimBound(ctx, ns, "www", bindTimeout)
	if err != nil {
		t.Fatalf("%v; events: %s", err, bed.EventSummary(ctx, ns, "PersistentVolumeClaim", "www"))
	}
	if pv.Name != pvName || pv.Spec.CSI == nil || pv.Spec.CSI.VolumeAttributes["subDir"] != dir {
		t.Fatalf("the claim is bound to %s %+v, want %s of this driver in %s", pv.Name, pv.Spec.CSI, pvName, dir)
	}
	if got, _ := c.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "www", metav1.GetOptions{}); got == nil || got.UID != pvc.UID {
		t.Errorf("the claim object was replaced")
	}
	web := runPod(t, ctx, nodeA, ns, "web", "www")
	if got := readFile(t, filepath.Join(web.Mounts["www"], "index.html")); got != "written under nfs-subdir-external-provisioner\n" {
		t.Errorf("the pod reads %q", got)
	}
	writeFile(t, filepath.Join(web.Mounts["www"], "after.txt"), "written through nfs-csi\n")

	// The class is this driver's now, with the old layout.
	fresh := provision(t, ctx, bed, claim(ns, "fresh", "nfs-client", corev1.ReadWriteMany))
	if fresh.Spec.CSI == nil || !isDir(onExport(ns+"-fresh-"+fresh.Name)) {
		t.Errorf("a new claim of nfs-client: PV %+v, directory %s", fresh.Spec.CSI, ns+"-fresh-"+fresh.Name)
	}

	// Deleting the migrated claim follows the class: archive.
	stopPod(t, ctx, nodeA, web)
	if err := bed.WaitDetached(ctx, pvName, nodeA.Name, time.Minute); err != nil {
		t.Error(err)
	}
	deleteClaim(t, ctx, bed, ns, "www")
	if err := bed.WaitPVGone(ctx, pvName, deleteTimeout); err != nil {
		t.Fatalf("%v; events: %s", err, bed.EventSummary(ctx, "", "PersistentVolume", pvName))
	}
	if isDir(onExport(dir)) {
		t.Errorf("%s is still there after the claim of an archiving class was deleted", dir)
	}
	archives := archivesOf(t, "", dir)
	if len(archives) != 1 {
		t.Fatalf("archives of %s: %q", dir, archives)
	}
	if got := readFile(t, onExport(archives[0]+"/after.txt")); got != "written through nfs-csi\n" {
		t.Errorf("the archive holds %q", got)
	}
	deleteClaim(t, ctx, bed, ns, "fresh")
	if err := bed.WaitPVGone(ctx, fresh.Name, deleteTimeout); err != nil {
		t.Error(err)
	}
	if err := c.StorageV1().StorageClasses().Delete(ctx, "nfs-client", metav1.DeleteOptions{}); err != nil {
		t.Error(err)
	}
}

func waitPodGone(ctx context.Context, ns, name string) error {
	for {
		_, err := bed.Cluster.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		} else if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
