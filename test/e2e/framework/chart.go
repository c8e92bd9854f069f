//go:build e2e

package framework

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Chart is the output of `helm template` for the nfs-csi chart.
type Chart struct {
	Objects []*unstructured.Unstructured
}

// LoadChart reads a rendered chart (a multi-document YAML file).
func LoadChart(path string) (*Chart, error) {
	objs, err := readObjects(path)
	if err != nil {
		return nil, err
	}
	return &Chart{Objects: objs}, nil
}

// readObjects reads the objects of a multi-document YAML file.
func readObjects(path string) ([]*unstructured.Unstructured, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []*unstructured.Unstructured
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(obj) > 0 {
			out = append(out, &unstructured.Unstructured{Object: obj})
		}
	}
}

// installedKinds are what the bed applies from the chart. The Deployment and
// DaemonSet are not applied (there is no kubelet to run them); their
// containers' arguments are run as processes instead (see ContainerArgs).
var installedKinds = map[string]schema.GroupVersionResource{
	"ServiceAccount":     {Version: "v1", Resource: "serviceaccounts"},
	"ClusterRole":        {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
	"ClusterRoleBinding": {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
	"Role":               {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
	"RoleBinding":        {Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
	"CSIDriver":          {Group: "storage.k8s.io", Version: "v1", Resource: "csidrivers"},
	"StorageClass":       {Group: "storage.k8s.io", Version: "v1", Resource: "storageclasses"},
}

// Install creates the chart's CSIDriver, RBAC and StorageClass objects in
// the cluster, and returns their kinds and names.
func (ch *Chart) Install(ctx context.Context, c *Cluster) ([]string, error) {
	var applied []string
	for _, obj := range ch.Objects {
		gvr, ok := installedKinds[obj.GetKind()]
		if !ok {
			continue
		}
		var err error
		if ns := obj.GetNamespace(); ns != "" {
			_, err = c.Dynamic.Resource(gvr).Namespace(ns).Create(ctx, obj, metav1.CreateOptions{})
		} else {
			_, err = c.Dynamic.Resource(gvr).Create(ctx, obj, metav1.CreateOptions{})
		}
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return applied, fmt.Errorf("cluster %s: create %s %s: %w", c.Name, obj.GetKind(), obj.GetName(), err)
		}
		applied = append(applied, obj.GetKind()+"/"+obj.GetName())
	}
	return applied, nil
}

// Find returns the chart's object of that kind and name, or nil.
func (ch *Chart) Find(kind, name string) *unstructured.Unstructured {
	for _, obj := range ch.Objects {
		if obj.GetKind() == kind && obj.GetName() == name {
			return obj
		}
	}
	return nil
}

// Kinds returns every object of a kind.
func (ch *Chart) Kinds(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, obj := range ch.Objects {
		if obj.GetKind() == kind {
			out = append(out, obj)
		}
	}
	return out
}

// PodSpec returns the pod template of the chart's Deployment or DaemonSet.
func (ch *Chart) PodSpec(kind, name string) (*corev1.PodSpec, error) {
	obj := ch.Find(kind, name)
	if obj == nil {
		return nil, fmt.Errorf("chart has no %s %s", kind, name)
	}
	switch kind {
	case "Deployment":
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &d); err != nil {
			return nil, err
		}
		return &d.Spec.Template.Spec, nil
	case "DaemonSet":
		var d appsv1.DaemonSet
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &d); err != nil {
			return nil, err
		}
		return &d.Spec.Template.Spec, nil
	}
	return nil, fmt.Errorf("kind %s has no pod template", kind)
}

// ContainerArgs returns the arguments of one container of a Deployment or
// DaemonSet in the chart, so the bed runs the binaries as the chart would.
func (ch *Chart) ContainerArgs(kind, name, container string) ([]string, error) {
	spec, err := ch.PodSpec(kind, name)
	if err != nil {
		return nil, err
	}
	for _, ctr := range spec.Containers {
		if ctr.Name == container {
			return append([]string(nil), ctr.Args...), nil
		}
	}
	return nil, fmt.Errorf("chart %s %s has no container %s", kind, name, container)
}
