package manifests

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"

	"github.com/example/nfs-csi/pkg/nfs"
)

// readFixture reads objects shaped as nfs-subdir-external-provisioner v4.0.2
// leaves them (its Helm chart's class, in-tree nfs: PVs annotated
// pv.kubernetes.io/provisioned-by, directories <namespace>-<claim>-<pv>), as
// `kubectl get pv,pvc,sc -A -o json` prints them.
func readFixture(t *testing.T) Inventory {
	t.Helper()
	f, err := os.Open("testdata/nfs-subdir-v4.0.2.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	inv, err := ReadInventory(f)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

const (
	uidShop = "9b05e5ee-1986-4e86-a951-42dd99bbf3a7"
	uidTeam = "3c1f4a57-7e0d-4f3b-8a6e-2b9e0c4d5a61"
)

func TestReadInventory(t *testing.T) {
	inv := readFixture(t)
	if len(inv.PVs) != 3 || len(inv.Claims) != 2 || len(inv.Classes) != 3 {
		t.Fatalf("read %d PVs, %d claims, %d classes; want 3, 2, 3", len(inv.PVs), len(inv.Claims), len(inv.Classes))
	}
	if inv.PVs[0].Spec.NFS == nil || inv.PVs[0].Annotations[AnnProvisionedBy] != "cluster.local/nfs-subdir-external-provisioner" {
		t.Errorf("first PV %+v", inv.PVs[0])
	}
	// Objects one after another, YAML too.
	inv, err := ReadInventory(strings.NewReader("kind: PersistentVolumeClaim\nmetadata: {name: a, namespace: b}\n---\nkind: Secret\n---\nkind: StorageClass\nmetadata: {name: c}\n"))
	if err != nil || len(inv.Claims) != 1 || len(inv.Classes) != 1 {
		t.Errorf("ReadInventory of a YAML stream = %+v, %v", inv, err)
	}
}

func TestPlanMigration(t *testing.T) {
	m, err := PlanMigration(readFixture(t), MigrateOptions{DriverName: "nfs.csi.example.io"})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Classes) != 2 {
		t.Fatalf("%d classes, want nfs-client and nfs-nested", len(m.Classes))
	}
	for _, tc := range []struct {
		class  string
		params map[string]string
		mount  string
		dflt   bool
	}{
		{"nfs-client", map[string]string{"server": "10.0.0.5", "share": "/srv/nfs", "subDir": OldDefaultTemplate, "onDelete": "archive"}, "", true},
		{"nfs-nested", map[string]string{"server": "10.0.0.5", "share": "/srv/nfs", "subDir": "${pvc.metadata.namespace}/${pvc.metadata.name}", "onDelete": "delete"}, "nfsvers=4.1", false},
	} {
		var sc *storagev1.StorageClass
		for _, mc := range m.Classes {
			if mc.New.Name == tc.class {
				sc = mc.New
			}
		}
		if sc == nil {
			t.Errorf("no class %s", tc.class)
			continue
		}
		if sc.Provisioner != "nfs.csi.example.io" || !equalMaps(sc.Parameters, tc.params) || strings.Join(sc.MountOptions, ",") != tc.mount ||
			*sc.ReclaimPolicy != corev1.PersistentVolumeReclaimDelete || sc.AllowVolumeExpansion != nil || (sc.Annotations[annDefaultClass] == "true") != tc.dflt {
			t.Errorf("class %s: %+v", tc.class, sc)
		}
	}
	if len(m.Volumes) != 2 {
		t.Fatalf("%d volumes, want the two bound ones", len(m.Volumes))
	}
	for _, tc := range []struct {
		pv, id, claimUID string
	}{
		{"pvc-" + uidShop, "v1#archive#10.0.0.5#/srv/nfs#shop-data-pvc-" + uidShop + "#", uidShop},
		{"pvc-" + uidTeam, "v1#delete#10.0.0.5#/srv/nfs#team/db#nfsvers=4.1", uidTeam},
	} {
		var v *MigratedVolume
		for i := range m.Volumes {
			if m.Volumes[i].New.PVName == tc.pv {
				v = &m.Volumes[i]
			}
		}
		if v == nil {
			t.Errorf("no volume %s", tc.pv)
			continue
		}
		pv := v.New.PersistentVolume()
		if pv.Name != tc.pv || pv.Spec.CSI.VolumeHandle != tc.id || string(pv.Spec.ClaimRef.UID) != tc.claimUID ||
			pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || pv.Spec.StorageClassName != v.Old.Spec.StorageClassName ||
			pv.Spec.Capacity.Storage().String() != "1Gi" || len(pv.Annotations) != 0 || len(pv.Finalizers) != 0 {
			t.Errorf("replacement PV %s: %+v", tc.pv, pv)
		}
	}
	if len(m.Notes) != 1 || !strings.Contains(m.Notes[0], "Released") {
		t.Errorf("notes %q, want one for the Released PV", m.Notes)
	}
}

func TestTranslateDeletePolicy(t *testing.T) {
	for _, tc := range []struct {
		params map[string]string
		want   nfs.OnDelete
		err    string
	}{
		{nil, nfs.OnDeleteArchive, ""},
		{map[string]string{"archiveOnDelete": "false"}, nfs.OnDeleteDelete, ""},
		{map[string]string{"archiveOnDelete": "true"}, nfs.OnDeleteArchive, ""},
		{map[string]string{"archiveOnDelete": "0"}, nfs.OnDeleteDelete, ""},
		{map[string]string{"onDelete": "delete", "archiveOnDelete": "true"}, nfs.OnDeleteDelete, ""},
		{map[string]string{"onDelete": "retain"}, nfs.OnDeleteRetain, ""},
		// The old provisioner compares exactly; other values fall through.
		{map[string]string{"onDelete": "Retain"}, nfs.OnDeleteArchive, ""},
		{map[string]string{"onDelete": "Retain", "archiveOnDelete": "false"}, nfs.OnDeleteDelete, ""},
		{map[string]string{"archiveOnDelete": "yes"}, "", `archiveOnDelete "yes" is no boolean`},
	} {
		got, err := TranslateDeletePolicy(tc.params)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("TranslateDeletePolicy(%v) = %q, %v; want an error with %q", tc.params, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("TranslateDeletePolicy(%v) = %q, %v; want %q", tc.params, got, err, tc.want)
		}
	}
}

func TestTranslatePathPattern(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"", OldDefaultTemplate, ""},
		{"${.PVC.namespace}/${.PVC.name}", "${pvc.metadata.namespace}/${pvc.metadata.name}", ""},
		{"/k8s/${.PVC.namespace}//${.PVC.name}/", "k8s/${pvc.metadata.namespace}/${pvc.metadata.name}", ""},
		{"${.PVC.namespace}-${.PVC.annotations.nfs.io/storage-path}", "", "${.PVC.annotations.nfs.io/storage-path}"},
		{"${.PVC.labels.team}", "", "${.PVC.labels.team}"},
		{"${.PVC.uid}", "", "unknown variable"},
		{"../${.PVC.name}", "", `".."`},
	} {
		got, err := TranslatePathPattern(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("TranslatePathPattern(%q) = %q, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("TranslatePathPattern(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// Each case edits the fixture into something that cannot be migrated as is.
func TestPlanMigrationErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(inv *Inventory, o *MigrateOptions)
		err  []string
	}{
		{"class with a label pathPattern", func(inv *Inventory, o *MigrateOptions) {
			inv.Classes[1].Parameters["pathPattern"] = "${.PVC.labels.team}/${.PVC.name}"
		}, []string{"StorageClass nfs-nested", "${.PVC.labels.team}", "--template nfs-nested="}},
		{"class with a bad archiveOnDelete", func(inv *Inventory, o *MigrateOptions) {
			inv.Classes[0].Parameters["archiveOnDelete"] = "maybe"
		}, []string{"StorageClass nfs-client", `"maybe"`}},
		{"claim missing from the input", func(inv *Inventory, o *MigrateOptions) { inv.Claims = inv.Claims[1:] }, []string{"claim shop/data", "-A"}},
		{"class missing from the input", func(inv *Inventory, o *MigrateOptions) { inv.Classes = inv.Classes[1:] }, []string{`StorageClass "nfs-client"`}},
		{"claim labels changed since", func(inv *Inventory, o *MigrateOptions) {
			inv.Classes[1].Parameters["pathPattern"] = "${.PVC.namespace}/${.PVC.labels.app}"
			o.Templates = map[string]string{"nfs-nested": "${pvc.metadata.namespace}/${pvc.metadata.name}"}
			inv.Claims[1].Labels = map[string]string{"app": "renamed"}
		}, []string{"does not end in team/renamed", "--share"}},
		{"path outside the given share", func(inv *Inventory, o *MigrateOptions) { o.Share = "/other" }, []string{"outside the share /other"}},
		{"two volumes in one directory", func(inv *Inventory, o *MigrateOptions) {
			inv.PVs[1].Spec.NFS.Path = inv.PVs[0].Spec.NFS.Path
			inv.PVs[1].Spec.MountOptions = nil
			inv.Classes[1].Parameters["pathPattern"] = ""
			o.Share = "/srv/nfs"
		}, []string{"share the directory shop-data-pvc-"}},
		{"no class of the provisioner", func(inv *Inventory, o *MigrateOptions) { o.Provisioners = []string{"example.com/nfs"} }, []string{"no StorageClass of provisioner example.com/nfs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv := readFixture(t)
			o := MigrateOptions{DriverName: "nfs.csi.example.io"}
			tc.edit(&inv, &o)
			m, err := PlanMigration(inv, o)
			if err == nil {
				t.Fatalf("PlanMigration = %+v, want an error", m)
			}
			for _, want := range tc.err {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

func TestMigrationScript(t *testing.T) {
	m, err := PlanMigration(readFixture(t), MigrateOptions{DriverName: "nfs.csi.example.io"})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := m.WriteScript(&b, ScriptOptions{Input: "old.json"}); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	// The steps, in order, for each claim.
	order := []string{
		"set -eu",
		"kubectl delete storageclass nfs-client", "kubectl delete storageclass nfs-nested", "provisioner: nfs.csi.example.io",
		"wait_unused shop data", "retire_pv pvc-" + uidShop, "volumeHandle: v1#archive#10.0.0.5#/srv/nfs#shop-data-pvc-" + uidShop, "pvc/data",
		"wait_unused team db", "retire_pv pvc-" + uidTeam, "uid: " + uidTeam, "pvc/db",
	}
	at := 0
	for _, want := range order {
		i := strings.Index(s[at:], strings.ReplaceAll(want, "kubectl ", "$KUBECTL "))
		if i < 0 {
			t.Fatalf("the script lacks %q after offset %d:\n%s", want, at, s)
		}
		at += i
	}
	for _, want := range []string{"NOT written", "Released", "allowed volume expansion", "old.json"} {
		if !strings.Contains(s, want) {
			t.Errorf("the script does not say %q", want)
		}
	}
	// The script runs in a POSIX shell: check its syntax.
	dir := t.TempDir()
	p := filepath.Join(dir, "switch.sh")
	if err := os.WriteFile(p, b.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := runShell("sh", "-n", p); err != nil {
		t.Errorf("sh -n: %v\n%s", err, out)
	}
}

// The replacement PV decodes into the object the script applies.
func TestMigratedPVJSON(t *testing.T) {
	m, err := PlanMigration(readFixture(t), MigrateOptions{DriverName: "nfs.csi.example.io"})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(m.Volumes[0].New.PersistentVolume())
	var pv corev1.PersistentVolume
	if err := json.Unmarshal(data, &pv); err != nil || pv.Spec.CSI.VolumeAttributes["subDir"] != "shop-data-pvc-"+uidShop {
		t.Errorf("PV %s, %v", data, err)
	}
}

func TestRecordMigration(t *testing.T) {
	m, err := PlanMigration(readFixture(t), MigrateOptions{DriverName: "nfs.csi.example.io"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, v := range m.Volumes {
		if err := os.MkdirAll(filepath.Join(dir, v.New.Volume.SubDir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sh, closeShare, err := nfs.ShareAt(dir, "10.0.0.5:/srv/nfs")
	if err != nil {
		t.Fatal(err)
	}
	defer closeShare()
	skipped, err := RecordMigration(sh, m, "10.0.0.5", "/srv/nfs", "cluster-1")
	if err != nil || len(skipped) != 0 {
		t.Fatalf("RecordMigration = %v, %v", skipped, err)
	}
	inv, err := nfs.InspectPath(dir)
	if err != nil || len(inv.Volumes) != 2 {
		t.Fatalf("inventory %+v, %v", inv, err)
	}
	for _, v := range inv.Volumes {
		if v.Record.Adopted || v.Record.ClusterID != "cluster-1" || v.Record.Claim() == "" {
			t.Errorf("record %+v: want the driver's own (not adopted), cluster-1, the claim", v.Record)
		}
	}
	if skipped, err := RecordMigration(sh, m, "10.0.0.6", "/srv/nfs", ""); err != nil || len(skipped) != 2 {
		t.Errorf("RecordMigration of another share = %v, %v; want both skipped", skipped, err)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
