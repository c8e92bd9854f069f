package manifests

import (
	"bytes"
	"fmt"
	"io"
	"strings"
)

// ScriptOptions say what the switch-over script tells the admin.
type ScriptOptions struct {
	// Input names the file the objects were read from: the way back.
	Input string
	// Records says where the creation records were written; empty: nowhere.
	Records string
}

// WriteScript writes the switch-over as a POSIX shell script meant to be
// read before it is run: the classes first, then one block per claim (wait
// until no pod uses it, Retain and delete the old PV, apply its replacement,
// wait until the claim is Bound again). Every kubectl call is visible; the
// YAML is inline.
func (m *Migration) WriteScript(w io.Writer, o ScriptOptions) error {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("#!/bin/sh")
	p("# Switch-over from nfs-subdir-external-provisioner / nfs-client-provisioner to %s,", m.driverName())
	p("# written by `nfs-csi migrate` from %s. Read it before you run it.", o.Input)
	p("#")
	p("# It changes Kubernetes objects only: no data is copied or moved, every claim keeps")
	p("# its directory on the NFS server, and every claim object stays (its name, UID,")
	p("# labels, and the workloads that refer to it). Keep %s: it holds the old", o.Input)
	p("# objects, and docs/migrate.md uses it to go back.")
	p("#")
	if o.Records != "" {
		p("# Creation records: written by nfs-csi migrate on %s, as the driver's own", o.Records)
		p("# volumes, so deleting a claim applies its class's onDelete, as the old provisioner did.")
	} else {
		p("# Creation records: NOT written (nfs-csi migrate ran without --share-mounted-at or")
		p("# --write-records). The new PVs then work, but the driver never deletes or archives")
		p("# their directories: deleting such a claim leaves the data, whatever the class says.")
	}
	for _, n := range m.Notes {
		p("# Note: %s", n)
	}
	p("set -eu")
	p("KUBECTL=${KUBECTL:-kubectl}")
	p("")
	p("# wait_unused NAMESPACE CLAIM: stop while a pod still uses the claim.")
	p("wait_unused() {")
	p(`  pods=$($KUBECTL -n "$1" get pods -o jsonpath='{range .items[*]}{.metadata.name}{" "}{range .spec.volumes[*]}{.persistentVolumeClaim.claimName}{" "}{end}{"\n"}{end}' |`)
	p(`    awk -v c="$2" '{for (i = 2; i <= NF; i++) if ($i == c) print $1}')`)
	p(`  if [ -n "$pods" ]; then`)
	p(`    echo "claim $1/$2 is still used by pod(s) $pods: scale their workloads down first" >&2`)
	p("    exit 1")
	p("  fi")
	p("}")
	p("")
	p("# retire_pv PV: delete the PV object and nothing else.")
	p("retire_pv() {")
	p(`  $KUBECTL patch pv "$1" --type=merge -p '{"spec":{"persistentVolumeReclaimPolicy":"Retain"}}'`)
	p(`  policy=$($KUBECTL get pv "$1" -o jsonpath='{.spec.persistentVolumeReclaimPolicy}')`)
	p(`  if [ "$policy" != Retain ]; then echo "PV $1 is $policy, not Retain: stopping" >&2; exit 1; fi`)
	p(`  $KUBECTL delete pv "$1" --wait=false`)
	p("  # The pv-protection finalizer holds a Bound PV until its claim is deleted, and the")
	p("  # claim stays; with Retain, nothing acts on the data when the object goes.")
	p(`  $KUBECTL patch pv "$1" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true`)
	p(`  $KUBECTL wait --for=delete "pv/$1" --timeout=2m`)
	p("}")
	p("")
	p("# 1. The StorageClasses. A class's provisioner cannot be changed, so each old class")
	p("#    is deleted and created again under the same name for %s (existing", m.driverName())
	p("#    PVs and claims do not depend on the class object). New claims of these classes")
	p("#    are provisioned by %s from now on.", m.driverName())
	for _, mc := range m.Classes {
		p("#    %s: subDir %s, onDelete %s (from %s)", mc.Old.Name, mc.New.Parameters["subDir"], mc.OnDelete, describeOldPolicy(mc.Old.Parameters))
		if mc.Old.AllowVolumeExpansion != nil && *mc.Old.AllowVolumeExpansion {
			p("#    %s allowed volume expansion; this driver does not expand volumes, so it is left out.", mc.Old.Name)
		}
		p("$KUBECTL delete storageclass %s --ignore-not-found", mc.Old.Name)
	}
	p("$KUBECTL apply -f - <<'EOF'")
	var classes []any
	for _, mc := range m.Classes {
		classes = append(classes, mc.New)
	}
	if err := WriteYAML(&b, classes...); err != nil {
		return err
	}
	p("EOF")
	p("")
	p("# 2. The claims, one at a time.")
	for _, v := range m.Volumes {
		p("")
		p("# --- claim %s/%s: PV %s, directory %s on %s", v.Claim.Namespace, v.Claim.Name, v.Old.Name, v.New.Volume.SubDir, v.New.Volume.ShareSource())
		p("# a) Scale down the workloads that use the claim, for example")
		p("#      $KUBECTL -n %s scale statefulset/<name> --replicas=0", v.Claim.Namespace)
		p("wait_unused %s %s", v.Claim.Namespace, v.Claim.Name)
		p("# b) Retain and delete the old in-tree PV (the claim shows Lost until c).")
		p("retire_pv %s", v.Old.Name)
		p("# c) Its replacement: the same name and directory, bound to the same claim (by UID).")
		p("#    Reclaim policy %s, onDelete %s.", v.New.ReclaimPolicy, v.New.Volume.OnDelete)
		p("$KUBECTL apply -f - <<'EOF'")
		if err := WriteYAML(&b, v.New.PersistentVolume()); err != nil {
			return err
		}
		p("EOF")
		p("$KUBECTL -n %s wait --for=jsonpath='{.status.phase}'=Bound pvc/%s --timeout=2m", v.Claim.Namespace, v.Claim.Name)
		p("# d) Scale the workloads up again.")
	}
	p("")
	p("# 3. Remove the old provisioner's Deployment when every claim is switched.")
	p(`echo "switched ` + fmt.Sprint(len(m.Volumes)) + ` claim(s) and ` + fmt.Sprint(len(m.Classes)) + ` StorageClass(es) to ` + m.driverName() + `"`)
	_, err := w.Write(b.Bytes())
	return err
}

func (m *Migration) driverName() string {
	if len(m.Classes) > 0 {
		return m.Classes[0].New.Provisioner
	}
	return "the driver"
}

func describeOldPolicy(params map[string]string) string {
	var s []string
	for _, k := range []string{"onDelete", "archiveOnDelete"} {
		if v, ok := params[k]; ok {
			s = append(s, fmt.Sprintf("%s=%q", k, v))
		}
	}
	if len(s) == 0 {
		return "no onDelete or archiveOnDelete: the old provisioner archived"
	}
	return strings.Join(s, ", ")
}
