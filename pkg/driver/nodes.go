package driver

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// NodeRegistry answers whether a node ID belongs to a node that runs this
// driver, for ControllerPublishVolume's NotFound.
type NodeRegistry interface {
	Exists(ctx context.Context, nodeID string) (bool, error)
}

// localNode is the registry of a process that serves the node service too:
// its own node is the only one.
type localNode string

func (n localNode) Exists(_ context.Context, id string) (bool, error) { return id == string(n), nil }

// anyNode trusts the CO. Kubernetes' csi-attacher only sends node IDs that a
// node plugin reported through CSINode. It is the registry of a controller
// without API access.
type anyNode struct{}

func (anyNode) Exists(context.Context, string) (bool, error) { return true, nil }

// csiNodes looks the node up in Kubernetes: its CSINode object must list this
// driver with this node ID. node-driver-registrar writes that entry when the
// node plugin registers with the kubelet. The CSINode is named after the
// Node, and the chart runs the node plugin with --nodeid set to the Node's
// name, so one get by name finds it (RBAC: get csinodes, nothing more).
type csiNodes struct {
	client KubeAPI
	driver string
}

func (c csiNodes) Exists(ctx context.Context, nodeID string) (bool, error) {
	drivers, err := c.client.CSINodeDrivers(ctx, nodeID)
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading its CSINode object (the controller's ServiceAccount needs get on csinodes): %w", err)
	}
	id, ok := drivers[c.driver]
	return ok && id == nodeID, nil
}
