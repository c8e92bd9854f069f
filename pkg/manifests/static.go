// Package manifests writes the Kubernetes objects of the driver's day-two
// commands: the pre-bound PV and PVC pairs of `nfs-csi import`, and the
// StorageClasses, replacement PVs and switch-over script of `nfs-csi migrate`.
// It only renders; what touches the share is in package nfs.
package manifests

import (
	"encoding/json"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/example/nfs-csi/pkg/driver"
	"github.com/example/nfs-csi/pkg/nfs"
)

// StaticVolume is a PV of this driver for a directory that already exists,
// and the claim it is bound to, in the form test/e2e/move_test.go proved:
// pre-bound both ways by name, the driver's volume handle and context, no
// status, no annotations of another cluster's controllers.
type StaticVolume struct {
	Volume     nfs.Volume
	DriverName string
	PVName     string
	// ClaimNamespace and ClaimName name the claim.
	ClaimNamespace, ClaimName string
	// ClaimUID, when set, binds the PV to that existing claim object (migrate
	// keeps the claim; a claimRef without its UID would leave a bound claim
	// Lost with ClaimMisbound). Empty: pre-bound by name only, for a claim
	// that is created with the PV (import).
	ClaimUID      types.UID
	Capacity      resource.Quantity
	AccessModes   []corev1.PersistentVolumeAccessMode
	VolumeMode    *corev1.PersistentVolumeMode
	StorageClass  string
	ReclaimPolicy corev1.PersistentVolumeReclaimPolicy
}

// PersistentVolume is the PV object.
func (s StaticVolume) PersistentVolume() *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolume"},
		ObjectMeta: metav1.ObjectMeta{Name: s.PVName},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: s.Capacity},
			AccessModes:                   s.AccessModes,
			VolumeMode:                    s.VolumeMode,
			PersistentVolumeReclaimPolicy: s.ReclaimPolicy,
			StorageClassName:              s.StorageClass,
			MountOptions:                  s.Volume.MountOptions,
			ClaimRef:                      &corev1.ObjectReference{Namespace: s.ClaimNamespace, Name: s.ClaimName, UID: s.ClaimUID},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
				Driver:           s.DriverName,
				VolumeHandle:     s.Volume.ID(),
				VolumeAttributes: driver.VolumeContext(s.Volume),
			}},
		},
	}
}

// Claim is the PVC object. Its storageClassName is always written, "" too:
// left out, the cluster's default StorageClass would be filled in.
func (s StaticVolume) Claim() *corev1.PersistentVolumeClaim {
	class := s.StorageClass
	return &corev1.PersistentVolumeClaim{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ClaimNamespace, Name: s.ClaimName},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      s.AccessModes,
			VolumeMode:       s.VolumeMode,
			StorageClassName: &class,
			VolumeName:       s.PVName,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: s.Capacity}},
		},
	}
}

// WriteYAML writes objs as one YAML stream, without the empty status and
// creationTimestamp that typed objects marshal to: what an admin reads and
// applies.
func WriteYAML(w io.Writer, objs ...any) error {
	for i, o := range objs {
		data, err := json.Marshal(o)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return err
		}
		delete(m, "status")
		if meta, ok := m["metadata"].(map[string]any); ok {
			delete(meta, "creationTimestamp")
		}
		out, err := yaml.Marshal(m)
		if err != nil {
			return err
		}
		sep := "---\n"
		if i == 0 {
			sep = ""
		}
		if _, err := fmt.Fprintf(w, "%s%s", sep, out); err != nil {
			return err
		}
	}
	return nil
}
