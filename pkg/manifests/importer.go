package manifests

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/example/nfs-csi/pkg/nfs"
)

// ImportSpec is one existing directory to bring under the driver.
type ImportSpec struct {
	// Path is the directory: relative to the share, or absolute on the
	// server below the share (the path of an in-tree `nfs:` PV).
	Path string
	// ClaimNamespace and ClaimName name the PVC to write.
	ClaimNamespace, ClaimName string
	// PVName is the PV's name; empty: "<namespace>-<claim>".
	PVName string
}

// ImportOptions are what every directory of one import shares.
type ImportOptions struct {
	Server, Share string
	MountOptions  []string
	DriverName    string
	Capacity      resource.Quantity
	AccessModes   []corev1.PersistentVolumeAccessMode
	StorageClass  string
	ReclaimPolicy corev1.PersistentVolumeReclaimPolicy
}

// PlanImport validates every spec, with the checks CreateVolume applies to a
// StorageClass and a subDir (nfs.Volume.Validate, nfs.SubDirOf: no path
// outside the share, not the share root, no "..", not the metadata
// directory) plus Kubernetes' rules for the names, and returns the volumes to
// write. All problems are reported at once; nothing is returned on error.
// Whether a directory belongs to another volume can only be told on the
// share: RecordImports does that.
func PlanImport(o ImportOptions, specs []ImportSpec) ([]StaticVolume, error) {
	var errs []error
	if len(specs) == 0 {
		errs = append(errs, errors.New("no directory to import: give --subdir or --list"))
	}
	switch o.ReclaimPolicy {
	case corev1.PersistentVolumeReclaimRetain, corev1.PersistentVolumeReclaimDelete:
	default:
		errs = append(errs, fmt.Errorf("reclaim policy %q: want Retain or Delete", o.ReclaimPolicy))
	}
	if o.StorageClass != "" {
		for _, msg := range validation.IsDNS1123Subdomain(o.StorageClass) {
			errs = append(errs, fmt.Errorf("storage class %q: %s", o.StorageClass, msg))
		}
	}
	var vols []StaticVolume
	subDirs, pvNames := map[string]string{}, map[string]string{}
	for _, s := range specs {
		sub, err := nfs.SubDirOf(o.Share, s.Path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		vol := nfs.Volume{Server: o.Server, Share: o.Share, SubDir: sub, OnDelete: nfs.OnDeleteRetain, MountOptions: o.MountOptions}
		if err := vol.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("directory %s: %w", s.Path, err))
			continue
		}
		pv := s.PVName
		if pv == "" {
			pv = s.ClaimNamespace + "-" + s.ClaimName
		}
		if err := validateNames(s.ClaimNamespace, s.ClaimName, pv); err != nil {
			errs = append(errs, fmt.Errorf("directory %s: %w", s.Path, err))
			continue
		}
		if prev, dup := subDirs[sub]; dup {
			errs = append(errs, fmt.Errorf("directory %s is listed twice (for PVs %s and %s); one directory is one volume", sub, prev, pv))
			continue
		}
		if prev, dup := pvNames[pv]; dup {
			errs = append(errs, fmt.Errorf("PV name %s is used for both %s and %s; give each a name with a third field in the list", pv, prev, sub))
			continue
		}
		subDirs[sub], pvNames[pv] = pv, sub
		vols = append(vols, StaticVolume{
			Volume: vol, DriverName: o.DriverName, PVName: pv,
			ClaimNamespace: s.ClaimNamespace, ClaimName: s.ClaimName,
			Capacity: o.Capacity, AccessModes: o.AccessModes, StorageClass: o.StorageClass, ReclaimPolicy: o.ReclaimPolicy,
		})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return vols, nil
}

func validateNames(namespace, claim, pv string) error {
	var errs []error
	for _, c := range []struct {
		what, value string
		check       func(string) []string
	}{
		{"namespace", namespace, validation.IsDNS1123Label},
		{"claim name", claim, validation.IsDNS1123Subdomain},
		{"PV name", pv, validation.IsDNS1123Subdomain},
	} {
		for _, msg := range c.check(c.value) {
			errs = append(errs, fmt.Errorf("%s %q: %s", c.what, c.value, msg))
		}
	}
	return errors.Join(errs...)
}

// ParseClaim reads "namespace/name".
func ParseClaim(s string) (namespace, name string, err error) {
	namespace, name, ok := strings.Cut(s, "/")
	if !ok || namespace == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("claim %q: want namespace/name, such as shop/data", s)
	}
	return namespace, name, nil
}

// ParseImportList reads an import list: one directory a line,
//
//	<path> <namespace>/<claim> [<pv-name>]
//
// separated by blanks; empty lines and lines starting with '#' are skipped.
func ParseImportList(r io.Reader) ([]ImportSpec, error) {
	var specs []ImportSpec
	var errs []error
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || len(f) > 3 {
			errs = append(errs, fmt.Errorf("line %d: %q: want <path> <namespace>/<claim> [<pv-name>]", n, line))
			continue
		}
		ns, name, err := ParseClaim(f[1])
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		s := ImportSpec{Path: f[0], ClaimNamespace: ns, ClaimName: name}
		if len(f) == 3 {
			s.PVName = f[2]
		}
		specs = append(specs, s)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return specs, errors.Join(errs...)
}

// RecordImports writes, on the share sh, each volume's creation record marked
// adopted (nfs.RecordExisting): from then on CreateVolume gives the directory
// to no other claim, no volume can be created inside or around it, and no
// delete policy removes it. It stops at the first refusal; records already
// written stay, and running the import again after fixing the list is safe.
func RecordImports(sh *nfs.Share, vols []StaticVolume, clusterID string) error {
	for _, v := range vols {
		rec := nfs.Record{
			Name: v.PVName, VolumeID: v.Volume.ID(), CapacityBytes: v.Capacity.Value(), ClusterID: clusterID,
			ClaimNamespace: v.ClaimNamespace, ClaimName: v.ClaimName,
		}
		if _, err := nfs.RecordExisting(sh, v.Volume, rec, false); err != nil {
			return fmt.Errorf("PV %s: %w", v.PVName, err)
		}
	}
	return nil
}

// Objects lists each volume's PV and claim, for WriteYAML.
func Objects(vols []StaticVolume) []any {
	var objs []any
	for _, v := range vols {
		objs = append(objs, v.PersistentVolume(), v.Claim())
	}
	return objs
}
