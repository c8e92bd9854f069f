//go:build e2e

package framework

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// SnapshotterName is the chart's csi-snapshotter container.
const SnapshotterName = "csi-snapshotter"

// The snapshot API (snapshot.storage.k8s.io/v1), which the CRDs add.
var (
	VolumeSnapshotGVR        = schema.GroupVersionResource{Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshots"}
	VolumeSnapshotContentGVR = schema.GroupVersionResource{Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshotcontents"}
	VolumeSnapshotClassGVR   = schema.GroupVersionResource{Group: "snapshot.storage.k8s.io", Version: "v1", Resource: "volumesnapshotclasses"}
	crdGVR                   = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

// SnapshotBins are what test/e2e/build-bins.sh builds for snapshots:
// external-snapshotter's two commands and the client module's CRDs.
type SnapshotBins struct {
	// Snapshotter is csi-snapshotter, the chart's sidecar.
	Snapshotter string
	// Controller is snapshot-controller, which a cluster runs once (not
	// the chart's).
	Controller string
	// CRDs is a directory of the VolumeSnapshotClass, VolumeSnapshot and
	// VolumeSnapshotContent CRDs (YAML), from the client module's config/crd.
	CRDs string
}

func snapshotBinsFromEnv() (SnapshotBins, error) {
	b := SnapshotBins{
		Snapshotter: os.Getenv("E2E_CSI_SNAPSHOTTER"),
		Controller:  os.Getenv("E2E_SNAPSHOT_CONTROLLER"),
		CRDs:        os.Getenv("E2E_SNAPSHOT_CRDS"),
	}
	return b, checkPaths(map[string]string{"E2E_CSI_SNAPSHOTTER": b.Snapshotter,
		"E2E_SNAPSHOT_CONTROLLER": b.Controller, "E2E_SNAPSHOT_CRDS": b.CRDs}, "run the e2e tests with make e2e")
}

// snapshotParts are the bed's snapshot processes, for failure messages.
type snapshotParts struct {
	controller, snapshotter *Process
}

// installSnapshotAPI does what a cluster admin does before a CSI driver's
// snapshots work (docs/snapshots.md): it applies the snapshot CRDs, waits
// until the apiserver serves them, and starts snapshot-controller, as a
// process of the control plane with the admin's credentials (like
// kube-controller-manager). Then it creates the chart's VolumeSnapshotClass,
// if the render has one.
func (b *Bed) installSnapshotAPI(ctx context.Context) error {
	c := b.Cluster
	if err := c.ApplyCRDs(ctx, b.Cfg.Bins.Snapshots.CRDs); err != nil {
		return err
	}
	var err error
	// --retry-crd-interval-max: it lists the CRDs at start for at most
	// 30 s by default, and exited ("Exiting due to failure to ensure CRDs
	// exist during startup: context deadline exceeded") when the loaded
	// guest's apiserver took longer. The group-snapshot check shares that
	// wait and would spend all of it on CRDs the bed does not install, so
	// that feature is off (the driver has no group snapshots).
	b.snapshots.controller, err = c.StartComponent("snapshot-controller", b.Cfg.Bins.Snapshots.Controller,
		"--kubeconfig="+c.AdminKubeconfig, "--leader-election=false", "--v=4",
		"--retry-crd-interval-max=5m", "--feature-gates=CSIVolumeGroupSnapshot=false")
	if err != nil {
		return err
	}
	for _, obj := range b.Cfg.Chart.Kinds("VolumeSnapshotClass") {
		if _, err := c.Dynamic.Resource(VolumeSnapshotClassGVR).Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("cluster %s: create the chart's VolumeSnapshotClass %s: %w", c.Name, obj.GetName(), err)
		}
		b.Installed = append(b.Installed, "VolumeSnapshotClass/"+obj.GetName())
	}
	return nil
}

// startSnapshotter runs the chart's csi-snapshotter sidecar, when the render
// has it, as the other sidecars run (startSidecar).
func (b *Bed) startSnapshotter(kubeconfig string) error {
	if _, err := b.Cfg.Chart.ContainerArgs("Deployment", ControllerName, SnapshotterName); err != nil {
		return nil // the chart renders no csi-snapshotter (controller.csiSnapshotter.enabled: false)
	}
	var err error
	b.snapshots.snapshotter, err = b.startSidecar(SnapshotterName, b.Cfg.Bins.Snapshots.Snapshotter, kubeconfig)
	return err
}

// ApplyCRDs creates every CustomResourceDefinition in the YAML files of dir
// and waits until each is Established and its resources can be listed.
func (c *Cluster) ApplyCRDs(ctx context.Context, dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("cluster %s: no CRDs (*.yaml) in %s", c.Name, dir)
	}
	var crds []*unstructured.Unstructured
	for _, f := range files {
		objs, err := readObjects(f)
		if err != nil {
			return err
		}
		for _, obj := range objs {
			if obj.GetKind() != "CustomResourceDefinition" {
				return fmt.Errorf("%s: %s %s is not a CustomResourceDefinition", f, obj.GetKind(), obj.GetName())
			}
			if _, err := c.Dynamic.Resource(crdGVR).Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("cluster %s: create CRD %s from %s: %w", c.Name, obj.GetName(), f, err)
			}
			crds = append(crds, obj)
		}
	}
	for _, crd := range crds {
		gvr, err := servedResource(crd)
		if err != nil {
			return err
		}
		err = poll(ctx, 2*time.Minute, nil, func() (bool, error) {
			got, err := c.Dynamic.Resource(crdGVR).Get(ctx, crd.GetName(), metav1.GetOptions{})
			if err != nil || !crdEstablished(got) {
				return false, nil
			}
			_, err = c.Dynamic.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1})
			return err == nil, nil
		})
		if err != nil {
			return fmt.Errorf("cluster %s: CRD %s not established and served: %w", c.Name, crd.GetName(), err)
		}
	}
	return nil
}

// servedResource is the resource of a CRD's storage version.
func servedResource(crd *unstructured.Unstructured) (schema.GroupVersionResource, error) {
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	for _, v := range versions {
		m, _ := v.(map[string]any)
		if storage, _ := m["storage"].(bool); storage {
			name, _ := m["name"].(string)
			return schema.GroupVersionResource{Group: group, Version: name, Resource: plural}, nil
		}
	}
	return schema.GroupVersionResource{}, fmt.Errorf("CRD %s has no storage version", crd.GetName())
}

func crdEstablished(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, cond := range conds {
		m, _ := cond.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// VolumeSnapshot is what the tests read of a snapshot.storage.k8s.io/v1
// VolumeSnapshot (the repository does not depend on the snapshot client).
type VolumeSnapshot struct {
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Source struct {
			PersistentVolumeClaimName string `json:"persistentVolumeClaimName,omitempty"`
		} `json:"source"`
		VolumeSnapshotClassName string `json:"volumeSnapshotClassName,omitempty"`
	} `json:"spec"`
	Status struct {
		BoundVolumeSnapshotContentName string             `json:"boundVolumeSnapshotContentName,omitempty"`
		ReadyToUse                     bool               `json:"readyToUse,omitempty"`
		RestoreSize                    *resource.Quantity `json:"restoreSize,omitempty"`
		Error                          *SnapshotError     `json:"error,omitempty"`
	} `json:"status"`
}

// VolumeSnapshotContent is what the tests read of a VolumeSnapshotContent.
type VolumeSnapshotContent struct {
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Driver         string `json:"driver"`
		DeletionPolicy string `json:"deletionPolicy"`
		Source         struct {
			VolumeHandle string `json:"volumeHandle,omitempty"`
		} `json:"source"`
		VolumeSnapshotRef struct {
			Namespace string `json:"namespace"`
			Name      string `json:"name"`
		} `json:"volumeSnapshotRef"`
		VolumeSnapshotClassName string `json:"volumeSnapshotClassName,omitempty"`
	} `json:"spec"`
	Status struct {
		SnapshotHandle string         `json:"snapshotHandle,omitempty"`
		RestoreSize    *int64         `json:"restoreSize,omitempty"`
		ReadyToUse     bool           `json:"readyToUse,omitempty"`
		Error          *SnapshotError `json:"error,omitempty"`
	} `json:"status"`
}

// SnapshotError is a VolumeSnapshot's or VolumeSnapshotContent's status.error.
type SnapshotError struct {
	Message string `json:"message,omitempty"`
}

func fromUnstructured(obj *unstructured.Unstructured, into any) error {
	b, err := json.Marshal(obj.Object)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, into)
}

// CreateSnapshotClass creates a VolumeSnapshotClass of the bed's driver
// with no parameters.
func (b *Bed) CreateSnapshotClass(ctx context.Context, name, deletionPolicy string) error {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion":     "snapshot.storage.k8s.io/v1",
		"kind":           "VolumeSnapshotClass",
		"metadata":       map[string]any{"name": name},
		"driver":         b.DriverName,
		"deletionPolicy": deletionPolicy,
	}}
	_, err := b.Cluster.Dynamic.Resource(VolumeSnapshotClassGVR).Create(ctx, obj, metav1.CreateOptions{})
	return err
}

// CreateVolumeSnapshot asks for a snapshot of the claim namespace/claim in
// class. It does not wait.
func (b *Bed) CreateVolumeSnapshot(ctx context.Context, namespace, name, class, claim string) error {
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "snapshot.storage.k8s.io/v1",
		"kind":       "VolumeSnapshot",
		"metadata":   map[string]any{"name": name, "namespace": namespace},
		"spec": map[string]any{
			"volumeSnapshotClassName": class,
			"source":                  map[string]any{"persistentVolumeClaimName": claim},
		},
	}}
	_, err := b.Cluster.Dynamic.Resource(VolumeSnapshotGVR).Namespace(namespace).Create(ctx, obj, metav1.CreateOptions{})
	return err
}

// GetVolumeSnapshot reads a VolumeSnapshot.
func (b *Bed) GetVolumeSnapshot(ctx context.Context, namespace, name string) (*VolumeSnapshot, error) {
	obj, err := b.Cluster.Dynamic.Resource(VolumeSnapshotGVR).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	var vs VolumeSnapshot
	return &vs, fromUnstructured(obj, &vs)
}

// GetSnapshotContent reads a VolumeSnapshotContent.
func (b *Bed) GetSnapshotContent(ctx context.Context, name string) (*VolumeSnapshotContent, error) {
	obj, err := b.Cluster.Dynamic.Resource(VolumeSnapshotContentGVR).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	var vsc VolumeSnapshotContent
	return &vsc, fromUnstructured(obj, &vsc)
}

// WaitSnapshotReady waits until the VolumeSnapshot reports readyToUse and
// is bound to a VolumeSnapshotContent that is ready too, and returns both.
func (b *Bed) WaitSnapshotReady(ctx context.Context, namespace, name string, timeout time.Duration) (*VolumeSnapshot, *VolumeSnapshotContent, error) {
	var vs *VolumeSnapshot
	var vsc *VolumeSnapshotContent
	err := poll(ctx, timeout, b.snapshots.controller, func() (bool, error) {
		var err error
		if vs, err = b.GetVolumeSnapshot(ctx, namespace, name); err != nil || vs.Status.BoundVolumeSnapshotContentName == "" {
			return false, nil
		}
		if vsc, err = b.GetSnapshotContent(ctx, vs.Status.BoundVolumeSnapshotContentName); err != nil {
			return false, nil
		}
		return vs.Status.ReadyToUse && vsc.Status.ReadyToUse, nil
	})
	if err != nil {
		return vs, vsc, fmt.Errorf("VolumeSnapshot %s/%s not ready: %w\n%s", namespace, name, err, b.snapshotState(ctx, namespace, name, vs, vsc))
	}
	return vs, vsc, nil
}

// snapshotState describes a snapshot that did not get where a test wanted,
// with the logs that say why.
func (b *Bed) snapshotState(ctx context.Context, namespace, name string, vs *VolumeSnapshot, vsc *VolumeSnapshotContent) string {
	msg := ""
	if vs != nil {
		msg += fmt.Sprintf("VolumeSnapshot status %+v", vs.Status)
		if vs.Status.Error != nil {
			msg += fmt.Sprintf(" (error %q)", vs.Status.Error.Message)
		}
		msg += "\n"
	}
	if vsc != nil {
		msg += fmt.Sprintf("VolumeSnapshotContent %s status %+v", vsc.Name, vsc.Status)
		if vsc.Status.Error != nil {
			msg += fmt.Sprintf(" (error %q)", vsc.Status.Error.Message)
		}
		msg += "\n"
	}
	if name != "" {
		msg += "events: " + b.EventSummary(ctx, namespace, "VolumeSnapshot", name) + "\n"
	}
	for _, p := range []*Process{b.snapshots.controller, b.snapshots.snapshotter, b.Controller} {
		if p != nil {
			msg += "---- " + p.Name + ":\n" + p.Tail(10) + "\n"
		}
	}
	return msg
}

// DeleteVolumeSnapshot deletes a VolumeSnapshot; it does not wait.
func (b *Bed) DeleteVolumeSnapshot(ctx context.Context, namespace, name string) error {
	return b.Cluster.Dynamic.Resource(VolumeSnapshotGVR).Namespace(namespace).Delete(ctx, name, metav1.DeleteOptions{})
}

// WaitSnapshotGone waits until the VolumeSnapshot no longer exists.
func (b *Bed) WaitSnapshotGone(ctx context.Context, namespace, name string, timeout time.Duration) error {
	err := poll(ctx, timeout, b.snapshots.controller, func() (bool, error) {
		_, err := b.Cluster.Dynamic.Resource(VolumeSnapshotGVR).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		vs, _ := b.GetVolumeSnapshot(ctx, namespace, name)
		return fmt.Errorf("VolumeSnapshot %s/%s still exists: %w\n%s", namespace, name, err, b.snapshotState(ctx, namespace, name, vs, nil))
	}
	return nil
}

// WaitSnapshotContentGone waits until the VolumeSnapshotContent no longer
// exists: with deletionPolicy Delete, csi-snapshotter has called
// DeleteSnapshot and it succeeded.
func (b *Bed) WaitSnapshotContentGone(ctx context.Context, name string, timeout time.Duration) error {
	err := poll(ctx, timeout, b.snapshots.controller, func() (bool, error) {
		_, err := b.Cluster.Dynamic.Resource(VolumeSnapshotContentGVR).Get(ctx, name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		vsc, _ := b.GetSnapshotContent(ctx, name)
		return fmt.Errorf("VolumeSnapshotContent %s still exists: %w\n%s", name, err, b.snapshotState(ctx, "", "", nil, vsc))
	}
	return nil
}
