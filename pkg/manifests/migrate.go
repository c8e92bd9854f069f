package manifests

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/example/nfs-csi/pkg/driver"
	"github.com/example/nfs-csi/pkg/nfs"
)

// Migration from nfs-subdir-external-provisioner (v4.0.2, the last release)
// and its predecessor nfs-client-provisioner. Both provision an in-tree
// `nfs:` PV (server and path, the path being the provisioner's NFS_PATH joined
// with the directory) annotated pv.kubernetes.io/provisioned-by with the
// provisioner's name. The directory is the class's pathPattern expanded with
// the claim's namespace, name, labels and annotations, or, without one or when
// it expands to nothing, <namespace>-<claim>-<pv>. On delete, onDelete
// "delete" removes it, "retain" keeps it; otherwise archiveOnDelete "false"
// removes it, and anything else, absent included, renames it to
// archived-<directory> at the share root.

// DefaultOldProvisioners are the provisioner names that
// nfs-subdir-external-provisioner's Helm chart and manifests, and
// nfs-client-provisioner's, register.
var DefaultOldProvisioners = []string{
	"cluster.local/nfs-subdir-external-provisioner",
	"k8s-sigs.io/nfs-subdir-external-provisioner",
	"fuseim.pri/ifs",
}

// AnnProvisionedBy is the PV annotation that names the provisioner of a PV.
const AnnProvisionedBy = "pv.kubernetes.io/provisioned-by"

// annDefaultClass marks the cluster's default StorageClass; it carries over.
const annDefaultClass = "storageclass.kubernetes.io/is-default-class"

// OldDefaultTemplate is the directory nfs-subdir-external-provisioner makes
// without a pathPattern, in this driver's template syntax.
const OldDefaultTemplate = "${" + nfs.VarPVCNamespace + "}-${" + nfs.VarPVCName + "}-${" + nfs.VarPVName + "}"

// Inventory is what `kubectl get pv,pvc,sc -A -o json` lists.
type Inventory struct {
	PVs     []*corev1.PersistentVolume
	Claims  []*corev1.PersistentVolumeClaim
	Classes []*storagev1.StorageClass
}

// ReadInventory decodes kubectl's JSON (or YAML): a List, or objects one
// after another. Kinds other than PVs, PVCs and StorageClasses are ignored.
func ReadInventory(r io.Reader) (Inventory, error) {
	var inv Inventory
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 1<<20)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			return inv, nil
		} else if err != nil {
			return inv, fmt.Errorf("read the objects: %w", err)
		}
		if err := inv.add(raw); err != nil {
			return inv, err
		}
	}
}

func (inv *Inventory) add(raw json.RawMessage) error {
	var head struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return fmt.Errorf("read the objects: %w", err)
	}
	var err error
	switch head.Kind {
	case "List", "PersistentVolumeList", "PersistentVolumeClaimList", "StorageClassList":
		for _, item := range head.Items {
			if err := inv.add(item); err != nil {
				return err
			}
		}
	case "PersistentVolume":
		pv := &corev1.PersistentVolume{}
		err = json.Unmarshal(raw, pv)
		inv.PVs = append(inv.PVs, pv)
	case "PersistentVolumeClaim":
		pvc := &corev1.PersistentVolumeClaim{}
		err = json.Unmarshal(raw, pvc)
		inv.Claims = append(inv.Claims, pvc)
	case "StorageClass":
		sc := &storagev1.StorageClass{}
		err = json.Unmarshal(raw, sc)
		inv.Classes = append(inv.Classes, sc)
	}
	if err != nil {
		return fmt.Errorf("read a %s: %w", head.Kind, err)
	}
	return nil
}

// MigrateOptions steer PlanMigration.
type MigrateOptions struct {
	DriverName string
	// Provisioners are the old provisioner names to migrate from; empty:
	// DefaultOldProvisioners.
	Provisioners []string
	// Share, when set, is the old provisioner's NFS_PATH; otherwise it is
	// read off each PV's path, which ends in the directory.
	Share string
	// Server is the old provisioner's NFS_SERVER, needed with Share only for
	// a class that has no bound volume to read it from.
	Server string
	// Templates give a subDir template for new claims of a class whose
	// pathPattern cannot be translated, by class name.
	Templates map[string]string
}

// MigratedClass is a StorageClass of the old provisioner and its replacement,
// of the same name (a class's provisioner cannot be changed in place).
type MigratedClass struct {
	Old, New *storagev1.StorageClass
	OnDelete nfs.OnDelete
}

// MigratedVolume is a bound claim of the old provisioner and the PV of this
// driver that replaces its PV: same name, same directory, bound to the same
// claim object.
type MigratedVolume struct {
	Old   *corev1.PersistentVolume
	Claim *corev1.PersistentVolumeClaim
	New   StaticVolume
}

// Migration is what PlanMigration decided.
type Migration struct {
	Classes []MigratedClass
	Volumes []MigratedVolume
	// Notes say what was left alone, and why.
	Notes []string
}

// PlanMigration translates the old provisioner's classes and bound volumes.
// Everything that cannot be translated is an error, all of them at once, and
// nothing is returned then.
func PlanMigration(inv Inventory, o MigrateOptions) (*Migration, error) {
	provisioners := o.Provisioners
	if len(provisioners) == 0 {
		provisioners = DefaultOldProvisioners
	}
	m := &Migration{}
	var errs []error
	classes := map[string]*MigratedClass{}
	for _, sc := range inv.Classes {
		if !slices.Contains(provisioners, sc.Provisioner) {
			continue
		}
		mc, err := translateClass(sc, o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m.Classes = append(m.Classes, *mc)
		classes[sc.Name] = &m.Classes[len(m.Classes)-1]
	}
	claims := map[string]*corev1.PersistentVolumeClaim{}
	for _, c := range inv.Claims {
		claims[c.Namespace+"/"+c.Name] = c
	}
	type location struct{ server, share string }
	shares := map[string]location{} // by provisioner
	dirs := map[string]string{}     // server:share/subDir -> PV
	for _, pv := range inv.PVs {
		prov := pv.Annotations[AnnProvisionedBy]
		if !slices.Contains(provisioners, prov) {
			continue
		}
		if pv.Spec.NFS == nil {
			m.Notes = append(m.Notes, fmt.Sprintf("PV %s: provisioned by %s but not an nfs: volume; left alone", pv.Name, prov))
			continue
		}
		ref := pv.Spec.ClaimRef
		if ref == nil || pv.Status.Phase != corev1.VolumeBound {
			m.Notes = append(m.Notes, fmt.Sprintf("PV %s (%s:%s) is %s, bound to no claim; left alone (delete it, or import its directory with nfs-csi import)",
				pv.Name, pv.Spec.NFS.Server, pv.Spec.NFS.Path, phase(pv)))
			continue
		}
		claim := claims[ref.Namespace+"/"+ref.Name]
		if claim == nil || claim.UID != ref.UID || claim.Spec.VolumeName != pv.Name {
			errs = append(errs, fmt.Errorf("PV %s is bound to claim %s/%s, which is not in the input (list all namespaces: kubectl get pv,pvc,sc -A -o json)", pv.Name, ref.Namespace, ref.Name))
			continue
		}
		mc := classes[pv.Spec.StorageClassName]
		if mc == nil {
			errs = append(errs, fmt.Errorf("PV %s has StorageClass %q, which is not in the input or could not be translated; its delete policy is the class's", pv.Name, pv.Spec.StorageClassName))
			continue
		}
		rel := oldDirectory(mc.Old.Parameters["pathPattern"], claim, pv.Name)
		share := o.Share
		if share == "" {
			var err error
			if share, err = shareOf(pv, rel); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		sub, err := nfs.SubDirOf(share, pv.Spec.NFS.Path)
		if err != nil {
			errs = append(errs, fmt.Errorf("PV %s: %w", pv.Name, err))
			continue
		}
		loc := location{pv.Spec.NFS.Server, share}
		if prev, ok := shares[prov]; ok && prev != loc {
			errs = append(errs, fmt.Errorf("PV %s is on %s:%s, other PVs of provisioner %s on %s:%s; one provisioner serves one share: check the PVs, or give --share",
				pv.Name, loc.server, loc.share, prov, prev.server, prev.share))
			continue
		}
		shares[prov] = loc
		vol := nfs.Volume{Server: loc.server, Share: share, SubDir: sub, OnDelete: mc.OnDelete, MountOptions: pv.Spec.MountOptions}
		if err := vol.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("PV %s: %w", pv.Name, err))
			continue
		}
		key := vol.ShareSource() + "/" + sub
		if other, dup := dirs[key]; dup {
			errs = append(errs, fmt.Errorf("PVs %s and %s share the directory %s on %s (a pathPattern without the claim's name); one directory is one volume here: migrate one, copy the other's data to a new claim",
				other, pv.Name, sub, vol.ShareSource()))
			continue
		}
		dirs[key] = pv.Name
		m.Volumes = append(m.Volumes, MigratedVolume{Old: pv, Claim: claim, New: StaticVolume{
			Volume: vol, DriverName: o.DriverName, PVName: pv.Name,
			ClaimNamespace: claim.Namespace, ClaimName: claim.Name, ClaimUID: claim.UID,
			Capacity: pv.Spec.Capacity[corev1.ResourceStorage], AccessModes: pv.Spec.AccessModes, VolumeMode: pv.Spec.VolumeMode,
			StorageClass: pv.Spec.StorageClassName, ReclaimPolicy: pv.Spec.PersistentVolumeReclaimPolicy,
		}})
	}
	for i := range m.Classes {
		mc := &m.Classes[i]
		if loc, ok := shares[mc.Old.Provisioner]; ok {
			mc.New.Parameters[driver.ParamServer], mc.New.Parameters[driver.ParamShare] = loc.server, loc.share
		} else if o.Server != "" && o.Share != "" {
			mc.New.Parameters[driver.ParamServer] = o.Server
		} else {
			errs = append(errs, fmt.Errorf("StorageClass %s: no bound volume of provisioner %s tells its server and share; give --server and --share", mc.Old.Name, mc.Old.Provisioner))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(m.Classes) == 0 {
		return nil, fmt.Errorf("no StorageClass of provisioner %s in the input", strings.Join(provisioners, ", "))
	}
	return m, nil
}

func phase(pv *corev1.PersistentVolume) string {
	if pv.Status.Phase == "" {
		return "in no phase"
	}
	return string(pv.Status.Phase)
}

// translateClass writes this driver's class for an old one.
func translateClass(sc *storagev1.StorageClass, o MigrateOptions) (*MigratedClass, error) {
	policy, err := TranslateDeletePolicy(sc.Parameters)
	if err != nil {
		return nil, fmt.Errorf("StorageClass %s: %w", sc.Name, err)
	}
	tmpl, ok := o.Templates[sc.Name]
	if !ok {
		if tmpl, err = TranslatePathPattern(sc.Parameters["pathPattern"]); err != nil {
			return nil, fmt.Errorf("StorageClass %s: %w; existing volumes keep their directories, but new claims need a template: give --template %s=<subDir template>", sc.Name, err, sc.Name)
		}
	}
	for k := range sc.Parameters {
		if k != "pathPattern" && k != "onDelete" && k != "archiveOnDelete" {
			return nil, fmt.Errorf("StorageClass %s: parameter %q is not one of nfs-subdir-external-provisioner's (pathPattern, onDelete, archiveOnDelete); is this class of another provisioner?", sc.Name, k)
		}
	}
	n := &storagev1.StorageClass{
		TypeMeta:             metav1.TypeMeta{APIVersion: "storage.k8s.io/v1", Kind: "StorageClass"},
		ObjectMeta:           metav1.ObjectMeta{Name: sc.Name},
		Provisioner:          o.DriverName,
		Parameters:           map[string]string{driver.ParamServer: "", driver.ParamShare: o.Share, driver.ParamSubDir: tmpl, driver.ParamOnDelete: string(policy)},
		ReclaimPolicy:        sc.ReclaimPolicy,
		MountOptions:         sc.MountOptions,
		VolumeBindingMode:    sc.VolumeBindingMode,
		AllowedTopologies:    sc.AllowedTopologies,
		AllowVolumeExpansion: nil, // the driver cannot expand volumes
	}
	if v, ok := sc.Annotations[annDefaultClass]; ok {
		n.Annotations = map[string]string{annDefaultClass: v}
	}
	return &MigratedClass{Old: sc, New: n, OnDelete: policy}, nil
}

// TranslateDeletePolicy reads nfs-subdir-external-provisioner's delete
// parameters as it does: onDelete "delete" or "retain" (exactly so; other
// values are ignored), else archiveOnDelete parsed as a Go bool, archive when
// absent. A value it fails every delete with is an error here.
func TranslateDeletePolicy(params map[string]string) (nfs.OnDelete, error) {
	switch params["onDelete"] {
	case "delete":
		return nfs.OnDeleteDelete, nil
	case "retain":
		return nfs.OnDeleteRetain, nil
	}
	v, ok := params["archiveOnDelete"]
	if !ok {
		return nfs.OnDeleteArchive, nil
	}
	archive, err := strconv.ParseBool(v)
	if err != nil {
		return "", fmt.Errorf("archiveOnDelete %q is no boolean; nfs-subdir-external-provisioner failed every delete of this class. Set it to \"true\" or \"false\" first", v)
	}
	if archive {
		return nfs.OnDeleteArchive, nil
	}
	return nfs.OnDeleteDelete, nil
}

// TranslatePathPattern turns a pathPattern into a subDir template of this
// driver: its default directory when there is none, its variables renamed
// (nfs.CanonicalTemplate), ${.PVC.labels.X} and ${.PVC.annotations.X} refused.
func TranslatePathPattern(pattern string) (string, error) {
	if pattern == "" {
		return OldDefaultTemplate, nil
	}
	tmpl, err := nfs.CanonicalTemplate(pattern)
	if err != nil {
		return "", err
	}
	// nfs-subdir-external-provisioner joins the pattern to its share path,
	// which drops leading, doubled and trailing slashes (and resolves "..",
	// which ExpandSubDir refuses).
	tmpl = dropEmptyComponents(tmpl)
	if _, err := nfs.ExpandSubDir(tmpl, map[string]string{nfs.VarPVCNamespace: "ns", nfs.VarPVCName: "claim", nfs.VarPVName: "pv"}); err != nil {
		return "", err
	}
	return tmpl, nil
}

func dropEmptyComponents(p string) string {
	return strings.Join(strings.FieldsFunc(p, func(r rune) bool { return r == '/' }), "/")
}

// oldPatternVariable is nfs-subdir-external-provisioner's own expression.
var oldPatternVariable = regexp.MustCompile(`\$\{\.PVC\.((labels|annotations)\.(.*?)|.*?)\}`)

// oldDirectory is the directory the old provisioner made for claim, relative
// to its share, with the claim's metadata as it is now.
func oldDirectory(pattern string, claim *corev1.PersistentVolumeClaim, pvName string) string {
	dir := oldPatternVariable.ReplaceAllStringFunc(pattern, func(v string) string {
		s := oldPatternVariable.FindStringSubmatch(v)
		switch s[2] {
		case "labels":
			return claim.Labels[s[3]]
		case "annotations":
			return claim.Annotations[s[3]]
		}
		switch s[1] {
		case "namespace":
			return claim.Namespace
		case "name":
			return claim.Name
		}
		return ""
	})
	if dir == "" {
		dir = claim.Namespace + "-" + claim.Name + "-" + pvName
	}
	return strings.Trim(path.Clean("/"+dir), "/")
}

// shareOf is the old provisioner's share: the PV's path less the directory.
func shareOf(pv *corev1.PersistentVolume, rel string) (string, error) {
	p := pv.Spec.NFS.Path
	if rel != "" && p == "/"+rel {
		return "/", nil
	}
	if share, ok := strings.CutSuffix(p, "/"+rel); ok && rel != "" && share != "" {
		return share, nil
	}
	return "", fmt.Errorf("PV %s: its path %s does not end in %s, the directory the old provisioner makes for claim %s/%s (the claim's labels or annotations may have changed since); give --share, the provisioner's NFS_PATH",
		pv.Name, p, rel, pv.Spec.ClaimRef.Namespace, pv.Spec.ClaimRef.Name)
}

// RecordMigration writes, on the share sh of server:share, the creation
// record of each migrated volume there, as the driver's own (not adopted),
// so that deleting the claim applies the new class's policy as the old
// provisioner would have. It returns the volumes on other shares, which it
// skipped.
func RecordMigration(sh *nfs.Share, m *Migration, server, share, clusterID string) (skipped []string, err error) {
	for _, v := range m.Volumes {
		vol := v.New.Volume
		if vol.Server != server || vol.Share != share {
			skipped = append(skipped, v.New.PVName)
			continue
		}
		rec := nfs.Record{
			Name: v.New.PVName, VolumeID: vol.ID(), CapacityBytes: v.New.Capacity.Value(), ClusterID: clusterID,
			ClaimNamespace: v.Claim.Namespace, ClaimName: v.Claim.Name,
		}
		if _, err := nfs.RecordExisting(sh, vol, rec, true); err != nil {
			return skipped, fmt.Errorf("PV %s: %w", v.New.PVName, err)
		}
	}
	return skipped, nil
}
