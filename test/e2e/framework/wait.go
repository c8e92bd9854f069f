//go:build e2e

package framework

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

// WaitClaimBound waits for the claim to be Bound and returns its PV.
func (b *Bed) WaitClaimBound(ctx context.Context, namespace, claim string, timeout time.Duration) (*corev1.PersistentVolume, error) {
	c := b.Cluster.Client
	var pvc *corev1.PersistentVolumeClaim
	err := poll(ctx, timeout, b.Controller, func() (bool, error) {
		var err error
		pvc, err = c.CoreV1().PersistentVolumeClaims(namespace).Get(ctx, claim, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return pvc.Status.Phase == corev1.ClaimBound, nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim %s/%s not Bound (phase %q): %w; events: %s", namespace, claim,
			phaseOf(pvc), err, b.EventSummary(ctx, namespace, "PersistentVolumeClaim", claim))
	}
	return c.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
}

func phaseOf(pvc *corev1.PersistentVolumeClaim) corev1.PersistentVolumeClaimPhase {
	if pvc == nil {
		return ""
	}
	return pvc.Status.Phase
}

// WaitClaimPhase waits until the claim reaches phase, and returns it.
func (b *Bed) WaitClaimPhase(ctx context.Context, namespace, claim string, phase corev1.PersistentVolumeClaimPhase, timeout time.Duration) (*corev1.PersistentVolumeClaim, error) {
	var pvc *corev1.PersistentVolumeClaim
	err := poll(ctx, timeout, nil, func() (bool, error) {
		var err error
		pvc, err = b.Cluster.Client.CoreV1().PersistentVolumeClaims(namespace).Get(ctx, claim, metav1.GetOptions{})
		return err == nil && pvc.Status.Phase == phase, nil
	})
	if err != nil {
		return pvc, fmt.Errorf("claim %s/%s: phase %q, want %q: %w", namespace, claim, phaseOf(pvc), phase, err)
	}
	return pvc, nil
}

// WaitPVPhase waits until the PV reaches phase.
func (b *Bed) WaitPVPhase(ctx context.Context, name string, phase corev1.PersistentVolumePhase, timeout time.Duration) error {
	var last corev1.PersistentVolumePhase
	err := poll(ctx, timeout, nil, func() (bool, error) {
		pv, err := b.Cluster.Client.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		last = pv.Status.Phase
		return last == phase, nil
	})
	if err != nil {
		return fmt.Errorf("PV %s: phase %q, want %q: %w", name, last, phase, err)
	}
	return nil
}

// FindAttachment returns the VolumeAttachment of pv to node, or nil.
func (b *Bed) FindAttachment(ctx context.Context, pv, node string) (*storagev1.VolumeAttachment, error) {
	list, err := b.Cluster.Client.StorageV1().VolumeAttachments().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for i := range list.Items {
		va := &list.Items[i]
		if va.Spec.NodeName == node && va.Spec.Source.PersistentVolumeName != nil && *va.Spec.Source.PersistentVolumeName == pv {
			return va, nil
		}
	}
	return nil, nil
}

// WaitAttached waits for the VolumeAttachment of pv to node to report attached.
func (b *Bed) WaitAttached(ctx context.Context, pv, node string, timeout time.Duration) (*storagev1.VolumeAttachment, error) {
	var va *storagev1.VolumeAttachment
	err := poll(ctx, timeout, b.Controller, func() (bool, error) {
		var err error
		va, err = b.FindAttachment(ctx, pv, node)
		return err == nil && va != nil && va.Status.Attached, nil
	})
	if err != nil {
		detail := "no VolumeAttachment"
		if va != nil {
			detail = fmt.Sprintf("VolumeAttachment %s attached=%v attachError=%v", va.Name, va.Status.Attached, va.Status.AttachError)
		}
		return nil, fmt.Errorf("PV %s not attached to %s (%s): %w", pv, node, detail, err)
	}
	return va, nil
}

// WaitDetached waits until no VolumeAttachment of pv to node exists.
func (b *Bed) WaitDetached(ctx context.Context, pv, node string, timeout time.Duration) error {
	return poll(ctx, timeout, b.Controller, func() (bool, error) {
		va, err := b.FindAttachment(ctx, pv, node)
		return err == nil && va == nil, nil
	})
}

// WaitPVGone waits until the PV object no longer exists.
func (b *Bed) WaitPVGone(ctx context.Context, pv string, timeout time.Duration) error {
	err := poll(ctx, timeout, b.Controller, func() (bool, error) {
		_, err := b.Cluster.Client.CoreV1().PersistentVolumes().Get(ctx, pv, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if err != nil {
		return fmt.Errorf("PV %s still exists: %w; events: %s", pv, err, b.EventSummary(ctx, "", "PersistentVolume", pv))
	}
	return nil
}

// Events returns the events about one object, oldest first (Cluster.Events).
func (b *Bed) Events(ctx context.Context, namespace, kind, name string) ([]corev1.Event, error) {
	return b.Cluster.Events(ctx, namespace, kind, name)
}

// Events returns the events about one object, oldest first. namespace ""
// means the default namespace, where events about cluster-scoped objects go.
func (c *Cluster) Events(ctx context.Context, namespace, kind, name string) ([]corev1.Event, error) {
	if namespace == "" {
		namespace = metav1.NamespaceDefault
	}
	sel := fields.Set{"involvedObject.kind": kind, "involvedObject.name": name}.AsSelector().String()
	list, err := c.Client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// WaitEvent waits for an event about the object with that reason, and
// returns it.
func (b *Bed) WaitEvent(ctx context.Context, namespace, kind, name, reason string, timeout time.Duration) (*corev1.Event, error) {
	var found *corev1.Event
	err := poll(ctx, timeout, nil, func() (bool, error) {
		events, err := b.Events(ctx, namespace, kind, name)
		if err != nil {
			return false, nil
		}
		for i := range events {
			if events[i].Reason == reason {
				found = &events[i]
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("no %s event for %s %s/%s: %w; events: %s", reason, kind, namespace, name, err,
			b.EventSummary(ctx, namespace, kind, name))
	}
	return found, nil
}

// EventSummary is a one-line list of an object's events, for messages
// (Cluster.EventSummary).
func (b *Bed) EventSummary(ctx context.Context, namespace, kind, name string) string {
	return b.Cluster.EventSummary(ctx, namespace, kind, name)
}

// EventSummary is a one-line list of an object's events, for messages.
func (c *Cluster) EventSummary(ctx context.Context, namespace, kind, name string) string {
	events, err := c.Events(ctx, namespace, kind, name)
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, e := range events {
		parts = append(parts, fmt.Sprintf("%s(%dx): %s", e.Reason, e.Count, e.Message))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " | ")
}

// CreateNamespace creates a namespace for one test.
func (b *Bed) CreateNamespace(ctx context.Context, name string) error {
	_, err := b.Cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	return err
}
