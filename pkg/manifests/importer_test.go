package manifests

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/example/nfs-csi/pkg/nfs"
)

func testImportOptions() ImportOptions {
	return ImportOptions{
		Server: "10.0.0.5", Share: "/nfsdata", MountOptions: []string{"nfsvers=4.1"}, DriverName: "nfs.csi.example.io",
		Capacity: resource.MustParse("5Gi"), AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
		StorageClass: "nfs", ReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
	}
}

func TestPlanImport(t *testing.T) {
	for _, tc := range []struct {
		name    string
		edit    func(*ImportOptions)
		specs   []ImportSpec
		err     []string
		subDirs []string
		pvNames []string
	}{
		{name: "relative and absolute paths", specs: []ImportSpec{
			{Path: "app", ClaimNamespace: "shop", ClaimName: "data"},
			{Path: "/nfsdata/team/db", ClaimNamespace: "team", ClaimName: "db", PVName: "team-db-old"},
		}, subDirs: []string{"app", "team/db"}, pvNames: []string{"shop-data", "team-db-old"}},
		{name: "outside the share", specs: []ImportSpec{{Path: "/etc/app", ClaimNamespace: "a", ClaimName: "b"}}, err: []string{"/etc/app is outside the share /nfsdata"}},
		{name: "share root", specs: []ImportSpec{{Path: "/nfsdata", ClaimNamespace: "a", ClaimName: "b"}}, err: []string{"root of share /nfsdata"}},
		{name: "dot-dot", specs: []ImportSpec{{Path: "app/../../etc", ClaimNamespace: "a", ClaimName: "b"}}, err: []string{`component ".."`}},
		{name: "metadata directory", specs: []ImportSpec{{Path: ".nfs-csi", ClaimNamespace: "a", ClaimName: "b"}}, err: []string{"reserved"}},
		{name: "bad names", specs: []ImportSpec{{Path: "app", ClaimNamespace: "Shop", ClaimName: "data_1"}}, err: []string{`namespace "Shop"`, `claim name "data_1"`}},
		{name: "same directory twice", specs: []ImportSpec{
			{Path: "app", ClaimNamespace: "a", ClaimName: "b"}, {Path: "/nfsdata/app", ClaimNamespace: "c", ClaimName: "d"},
		}, err: []string{"directory app is listed twice"}},
		{name: "same PV name twice", specs: []ImportSpec{
			{Path: "x", ClaimNamespace: "a", ClaimName: "b", PVName: "pv"}, {Path: "y", ClaimNamespace: "c", ClaimName: "d", PVName: "pv"},
		}, err: []string{"PV name pv is used for both"}},
		{name: "bad server", edit: func(o *ImportOptions) { o.Server = "nfs server" }, specs: []ImportSpec{{Path: "app", ClaimNamespace: "a", ClaimName: "b"}}, err: []string{"nfs server"}},
		{name: "bad reclaim policy", edit: func(o *ImportOptions) { o.ReclaimPolicy = "Recycle" }, specs: []ImportSpec{{Path: "app", ClaimNamespace: "a", ClaimName: "b"}}, err: []string{`reclaim policy "Recycle"`}},
		{name: "nothing", err: []string{"no directory to import"}},
		{name: "all errors at once", specs: []ImportSpec{
			{Path: "/etc", ClaimNamespace: "a", ClaimName: "b"}, {Path: "ok", ClaimNamespace: "a", ClaimName: "c"}, {Path: "", ClaimNamespace: "a", ClaimName: "d"},
		}, err: []string{"/etc is outside", "root of share"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testImportOptions()
			if tc.edit != nil {
				tc.edit(&o)
			}
			vols, err := PlanImport(o, tc.specs)
			if len(tc.err) > 0 {
				if err == nil {
					t.Fatalf("PlanImport = %+v, want an error", vols)
				}
				for _, want := range tc.err {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
				if vols != nil {
					t.Errorf("PlanImport returned volumes with an error: %+v", vols)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range vols {
				if v.Volume.SubDir != tc.subDirs[i] || v.PVName != tc.pvNames[i] || v.Volume.OnDelete != nfs.OnDeleteRetain {
					t.Errorf("volume %d: subDir %q, PV %q, policy %q; want %q, %q, retain", i, v.Volume.SubDir, v.PVName, v.Volume.OnDelete, tc.subDirs[i], tc.pvNames[i])
				}
			}
		})
	}
}

// The YAML is what move_test.go proved: pre-bound by name both ways, no UIDs,
// Retain, the driver's handle and context, an explicit storageClassName.
func TestImportYAML(t *testing.T) {
	vols, err := PlanImport(testImportOptions(), []ImportSpec{{Path: "/nfsdata/app", ClaimNamespace: "shop", ClaimName: "data"}})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteYAML(&buf, Objects(vols)...); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, unwanted := range []string{"uid", "creationTimestamp", "status", "resourceVersion", "annotations"} {
		if strings.Contains(out, unwanted) {
			t.Errorf("the YAML has %q:\n%s", unwanted, out)
		}
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	var pv corev1.PersistentVolume
	var pvc corev1.PersistentVolumeClaim
	if err := dec.Decode(&pv); err != nil {
		t.Fatal(err)
	}
	if err := dec.Decode(&pvc); err != nil {
		t.Fatal(err)
	}
	csi := pv.Spec.CSI
	switch {
	case pv.Kind != "PersistentVolume" || pv.Name != "shop-data":
		t.Errorf("PV %s %s", pv.Kind, pv.Name)
	case pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain:
		t.Errorf("reclaim policy %q", pv.Spec.PersistentVolumeReclaimPolicy)
	case pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.Namespace != "shop" || pv.Spec.ClaimRef.Name != "data" || pv.Spec.ClaimRef.UID != "":
		t.Errorf("claimRef %+v", pv.Spec.ClaimRef)
	case csi == nil || csi.Driver != "nfs.csi.example.io" || csi.VolumeHandle != "v1#retain#10.0.0.5#/nfsdata#app#nfsvers=4.1":
		t.Errorf("csi %+v", csi)
	case csi.VolumeAttributes["server"] != "10.0.0.5" || csi.VolumeAttributes["share"] != "/nfsdata" || csi.VolumeAttributes["subDir"] != "app" || csi.VolumeAttributes["mountOptions"] != "nfsvers=4.1":
		t.Errorf("volumeAttributes %v", csi.VolumeAttributes)
	case strings.Join(pv.Spec.MountOptions, ",") != "nfsvers=4.1" || pv.Spec.StorageClassName != "nfs" || pv.Spec.Capacity.Storage().String() != "5Gi":
		t.Errorf("PV spec %+v", pv.Spec)
	case pvc.Namespace != "shop" || pvc.Name != "data" || pvc.Spec.VolumeName != "shop-data" || pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "nfs":
		t.Errorf("PVC %+v", pvc)
	case pvc.Spec.Resources.Requests.Storage().String() != "5Gi" || pvc.Spec.AccessModes[0] != corev1.ReadWriteMany:
		t.Errorf("PVC spec %+v", pvc.Spec)
	}
	// With no class, "" is written: left out, the default class would be filled in.
	o := testImportOptions()
	o.StorageClass = ""
	vols, _ = PlanImport(o, []ImportSpec{{Path: "app", ClaimNamespace: "shop", ClaimName: "data"}})
	buf.Reset()
	_ = WriteYAML(&buf, vols[0].Claim())
	if !strings.Contains(buf.String(), `storageClassName: ""`) {
		t.Errorf("a claim without class:\n%s", buf.String())
	}
}

func TestParseImportList(t *testing.T) {
	specs, err := ParseImportList(strings.NewReader("# static PVs of the old cluster\n\n/nfsdata/app shop/data\nteam/db team/db team-db-old\n"))
	if err != nil || len(specs) != 2 || specs[0] != (ImportSpec{Path: "/nfsdata/app", ClaimNamespace: "shop", ClaimName: "data"}) ||
		specs[1] != (ImportSpec{Path: "team/db", ClaimNamespace: "team", ClaimName: "db", PVName: "team-db-old"}) {
		t.Errorf("ParseImportList = %+v, %v", specs, err)
	}
	for _, bad := range []string{"app\n", "app shop\n", "app shop/data pv extra\n", "app /data\n"} {
		if _, err := ParseImportList(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("ParseImportList(%q) = %v, want an error naming line 1", bad, err)
		}
	}
}

// With the share at hand, the records are written marked adopted, and a
// directory of another volume is refused.
func TestRecordImports(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"app", "team/db"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sh, closeShare, err := nfs.ShareAt(dir, "10.0.0.5:/nfsdata")
	if err != nil {
		t.Fatal(err)
	}
	defer closeShare()
	vols, err := PlanImport(testImportOptions(), []ImportSpec{
		{Path: "app", ClaimNamespace: "shop", ClaimName: "data"}, {Path: "team/db", ClaimNamespace: "team", ClaimName: "db"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := RecordImports(sh, vols, "cluster-1"); err != nil {
		t.Fatal(err)
	}
	inv, err := nfs.InspectPath(dir)
	if err != nil || len(inv.Volumes) != 2 {
		t.Fatalf("inventory %+v, %v", inv, err)
	}
	for _, v := range inv.Volumes {
		if !v.Record.Adopted || v.Record.ClusterID != "cluster-1" || v.Record.Claim() == "" {
			t.Errorf("record %+v: want adopted, cluster-1, a claim", v.Record)
		}
	}
	// Imported again under another PV name: refused, nothing changed.
	vols[0].PVName = "other"
	if err := RecordImports(sh, vols[:1], "cluster-1"); err == nil || !strings.Contains(err.Error(), `belongs to volume "shop-data"`) {
		t.Errorf("import of a directory of another volume = %v", err)
	}
	// Inside an imported directory: refused.
	inner, _ := PlanImport(testImportOptions(), []ImportSpec{{Path: "team/db/inner", ClaimNamespace: "a", ClaimName: "b"}})
	if err := os.MkdirAll(filepath.Join(dir, "team/db/inner"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := RecordImports(sh, inner, ""); err == nil || !strings.Contains(err.Error(), "inside the directory team/db") {
		t.Errorf("import inside another volume = %v", err)
	}
}
