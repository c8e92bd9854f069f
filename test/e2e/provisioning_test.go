//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// Scenario 1: a PVC against the chart's StorageClass goes Bound on a 1.37
// apiserver, where selfLink no longer exists, and its directory appears on
// the export under the templated name.
func TestDynamicProvisioning(t *testing.T) {
	ctx := testContext(t)
	c := bed.Cluster.Client

	ver, err := c.Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ver.GitVersion, "v1.37.") {
		t.Fatalf("apiserver is %s, want v1.37.x", ver.GitVersion)
	}

	ns := namespace(t, ctx, bed, "shop")
	pv := provision(t, ctx, bed, claim(ns, "data-web-0", "nfs-delete", corev1.ReadWriteOnce))

	if !isDir(onExport("shop/data-web-0")) {
		t.Errorf("no directory shop/data-web-0 on the export for PV %s", pv.Name)
	}
	csiSrc := pv.Spec.CSI
	if csiSrc == nil || csiSrc.Driver != bed.DriverName {
		t.Fatalf("PV %s is not a %s volume: %+v", pv.Name, bed.DriverName, pv.Spec.PersistentVolumeSource)
	}
	wantHandle := "v1#delete#127.0.0.1#/run/export#shop/data-web-0#nfsvers=3"
	if csiSrc.VolumeHandle != wantHandle {
		t.Errorf("volumeHandle = %q, want %q", csiSrc.VolumeHandle, wantHandle)
	}
	for k, want := range map[string]string{"server": "127.0.0.1", "share": "/run/export", "subDir": "shop/data-web-0"} {
		if got := csiSrc.VolumeAttributes[k]; got != want {
			t.Errorf("volumeAttributes[%s] = %q, want %q (all: %v)", k, got, want, csiSrc.VolumeAttributes)
		}
	}
	if got := pv.Annotations["pv.kubernetes.io/provisioned-by"]; got != bed.DriverName {
		t.Errorf("PV annotation provisioned-by = %q, want %q", got, bed.DriverName)
	}
	if pv.Spec.StorageClassName != "nfs-delete" || pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.Name != "data-web-0" {
		t.Errorf("PV %s: class %q, claimRef %+v", pv.Name, pv.Spec.StorageClassName, pv.Spec.ClaimRef)
	}

	// No selfLink anywhere: the raw objects as the apiserver serves them.
	for _, path := range []string{
		"/api/v1/namespaces/shop/persistentvolumeclaims/data-web-0",
		"/api/v1/persistentvolumes/" + pv.Name,
	} {
		raw, err := c.CoreV1().RESTClient().Get().AbsPath(path).DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var obj struct {
			Metadata map[string]any `json:"metadata"`
		}
		if err := json.Unmarshal(raw, &obj); err != nil {
			t.Fatal(err)
		}
		if _, ok := obj.Metadata["selfLink"]; ok {
			t.Errorf("%s has metadata.selfLink: %v", path, obj.Metadata["selfLink"])
		}
	}
	// And the provisioner never needed one.
	if log, err := os.ReadFile(cfg.LogDir + "/a-csi-provisioner.log"); err == nil && strings.Contains(string(log), "selfLink") {
		t.Errorf("csi-provisioner's log mentions selfLink")
	}

	deleteClaim(t, ctx, bed, ns, "data-web-0")
	if err := bed.WaitPVGone(ctx, pv.Name, deleteTimeout); err != nil {
		t.Fatal(err)
	}
	if isDir(onExport("shop/data-web-0")) {
		t.Errorf("onDelete=delete left shop/data-web-0 on the export")
	}
}
