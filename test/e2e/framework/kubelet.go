//go:build e2e

package framework

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Node is a Kubernetes Node with the driver's node plugin on it, and a
// stand-in for the kubelet's volume manager: it does what the kubelet does
// for a CSI volume once the attach/detach controller has attached it.
type Node struct {
	Name       string
	Socket     string
	KubeletDir string
	Proc       *Process
	bed        *Bed
	// multiWriter: the plugin advertises SINGLE_NODE_MULTI_WRITER, which
	// changes how the kubelet maps RWO and RWOP (read once, as it does).
	multiWriter bool
}

// AddNode starts a node plugin for name, and creates the Node (annotated for
// controller-managed attach/detach, as a kubelet with default flags
// registers) and the CSINode that the kubelet writes when
// node-driver-registrar registers the plugin.
func (b *Bed) AddNode(ctx context.Context, name string) (*Node, error) {
	c := b.Cluster
	dir := filepath.Join(c.Dir, "nodes", name)
	n := &Node{Name: name, Socket: filepath.Join(dir, "plugin", "csi.sock"), KubeletDir: filepath.Join(dir, "kubelet"), bed: b}
	for _, d := range []string{filepath.Dir(n.Socket), n.KubeletDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	args, err := b.Cfg.Chart.ContainerArgs("DaemonSet", NodeDaemonSetName, DriverContainer)
	if err != nil {
		return nil, err
	}
	args = setFlag(args, "--endpoint", "unix://"+n.Socket)
	args = setFlag(args, "--nodeid", name)
	args = setFlag(args, "--metrics-address", privateMetricsAddress)
	if n.Proc, err = StartProcess(c.LogDir, c.Name+"-node-"+name, b.Cfg.Driver, args...); err != nil {
		return nil, err
	}
	b.nodes[name] = n
	if err := waitCSI(ctx, n.Socket, n.Proc); err != nil {
		return nil, err
	}
	conn, err := DialCSI(n.Socket)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	nodeClient := csi.NewNodeClient(conn)
	info, err := nodeClient.NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
	if err != nil {
		return nil, fmt.Errorf("node %s: NodeGetInfo: %w", name, err)
	}
	caps, err := nodeClient.NodeGetCapabilities(ctx, &csi.NodeGetCapabilitiesRequest{})
	if err != nil {
		return nil, fmt.Errorf("node %s: NodeGetCapabilities: %w", name, err)
	}
	for _, c := range caps.GetCapabilities() {
		if c.GetRpc().GetType() == csi.NodeServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER {
			n.multiWriter = true
		}
	}
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name:        name,
		Labels:      map[string]string{"kubernetes.io/hostname": name},
		Annotations: map[string]string{"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
	}}
	if _, err := c.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	csiNode := &storagev1.CSINode{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{{
			Name: b.DriverName, NodeID: info.GetNodeId(),
		}}},
	}
	if max := info.GetMaxVolumesPerNode(); max > 0 {
		m := int32(max)
		csiNode.Spec.Drivers[0].Allocatable = &storagev1.VolumeNodeResources{Count: &m}
	}
	if _, err := c.Client.StorageV1().CSINodes().Create(ctx, csiNode, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	return n, nil
}

// Pod is a pod bound to a Node whose volumes the stand-in has published.
type Pod struct {
	*corev1.Pod
	Node *Node
	// Mounts maps the pod's volume name to its published target path.
	Mounts  map[string]string
	volumes []publishedVolume
}

type publishedVolume struct {
	name, handle, target string
}

// CreatePod creates a pod on the node that mounts each claim (volume name
// = claim name). It does not wait for anything.
func (n *Node) CreatePod(ctx context.Context, namespace, name string, claims ...string) (*corev1.Pod, error) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: corev1.PodSpec{
			NodeName:                     n.Name,
			AutomountServiceAccountToken: new(bool),
			Containers:                   []corev1.Container{{Name: "app", Image: "registry.invalid/app:never-pulled"}},
		},
	}
	for _, claim := range claims {
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: claim, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
		}})
		pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts,
			corev1.VolumeMount{Name: claim, MountPath: "/data/" + claim})
	}
	var created *corev1.Pod
	// The ServiceAccount admission plugin refuses pods until the namespace's
	// default ServiceAccount exists, which the controller manager makes.
	err := poll(ctx, 30*time.Second, nil, func() (bool, error) {
		var err error
		created, err = n.bed.Cluster.Client.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil && strings.Contains(err.Error(), "serviceaccount") {
			return false, nil
		}
		return true, err
	})
	return created, err
}

// RunPod creates a pod on the node and does the kubelet's part for each of
// its claims: wait for the claim to be bound and, when the CSIDriver says
// attachRequired, for the VolumeAttachment to report attached; report the
// volume in use in the Node's status; call NodePublishVolume with the
// fields the kubelet sends.
func (n *Node) RunPod(ctx context.Context, namespace, name string, claims ...string) (*Pod, error) {
	created, err := n.CreatePod(ctx, namespace, name, claims...)
	if err != nil {
		return nil, err
	}
	return n.Start(ctx, created)
}

// Start does the kubelet's volume work for a pod already created on this
// node (see RunPod).
func (n *Node) Start(ctx context.Context, created *corev1.Pod) (*Pod, error) {
	namespace, name := created.Namespace, created.Name
	p := &Pod{Pod: created, Node: n, Mounts: map[string]string{}}
	for _, vol := range created.Spec.Volumes {
		target, handle, err := n.publish(ctx, created, vol)
		if err != nil {
			return p, fmt.Errorf("pod %s/%s on %s, volume %s: %w", namespace, name, n.Name, vol.Name, err)
		}
		p.Mounts[vol.Name] = target
		p.volumes = append(p.volumes, publishedVolume{name: vol.Name, handle: handle, target: target})
	}
	return p, nil
}

func (n *Node) publish(ctx context.Context, pod *corev1.Pod, vol corev1.Volume) (target, handle string, err error) {
	c := n.bed.Cluster
	pv, err := n.bed.WaitClaimBound(ctx, pod.Namespace, vol.PersistentVolumeClaim.ClaimName, 2*time.Minute)
	if err != nil {
		return "", "", err
	}
	if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != n.bed.DriverName {
		return "", "", fmt.Errorf("PV %s is not a %s volume", pv.Name, n.bed.DriverName)
	}
	src := pv.Spec.CSI
	var publishContext map[string]string
	drv, err := c.Client.StorageV1().CSIDrivers().Get(ctx, n.bed.DriverName, metav1.GetOptions{})
	if err != nil {
		return "", "", err
	}
	if drv.Spec.AttachRequired == nil || *drv.Spec.AttachRequired {
		va, err := n.bed.WaitAttached(ctx, pv.Name, n.Name, 2*time.Minute)
		if err != nil {
			return "", "", err
		}
		publishContext = va.Status.AttachmentMetadata
	}
	if err := n.setVolumeInUse(ctx, n.bed.uniqueVolumeName(src.VolumeHandle), true); err != nil {
		return "", "", err
	}
	// The kubelet's layout: pods/<uid>/volumes/kubernetes.io~csi/<pv>/mount.
	// It makes the parent; the driver makes the target.
	target = filepath.Join(n.KubeletDir, "pods", string(pod.UID), "volumes", "kubernetes.io~csi", pv.Name, "mount")
	if err := os.MkdirAll(filepath.Dir(target), 0o750); err != nil {
		return "", "", err
	}
	var secrets map[string]string
	if ref := src.NodePublishSecretRef; ref != nil {
		s, err := c.Client.CoreV1().Secrets(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			return "", "", err
		}
		secrets = map[string]string{}
		for k, v := range s.Data {
			secrets[k] = string(v)
		}
	}
	mode, err := n.accessMode(pv.Spec.AccessModes)
	if err != nil {
		return "", "", err
	}
	req := &csi.NodePublishVolumeRequest{
		VolumeId:       src.VolumeHandle,
		PublishContext: publishContext,
		TargetPath:     target,
		VolumeCapability: &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{
				FsType: src.FSType, MountFlags: pv.Spec.MountOptions,
			}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
		},
		Readonly:      src.ReadOnly || vol.PersistentVolumeClaim.ReadOnly,
		Secrets:       secrets,
		VolumeContext: src.VolumeAttributes,
	}
	conn, err := DialCSI(n.Socket)
	if err != nil {
		return "", "", err
	}
	defer conn.Close()
	if _, err := csi.NewNodeClient(conn).NodePublishVolume(ctx, req); err != nil {
		return "", "", fmt.Errorf("NodePublishVolume: %w", err)
	}
	return target, src.VolumeHandle, nil
}

// accessMode maps the PV's first access mode the way the kubelet does,
// using SINGLE_NODE_MULTI_WRITER for RWO when the plugin advertises it.
func (n *Node) accessMode(modes []corev1.PersistentVolumeAccessMode) (csi.VolumeCapability_AccessMode_Mode, error) {
	mode := corev1.ReadWriteOnce
	if len(modes) > 0 {
		mode = modes[0]
	}
	switch mode {
	case corev1.ReadWriteOnce:
		if n.multiWriter {
			return csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER, nil
		}
		return csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, nil
	case corev1.ReadWriteOncePod:
		if n.multiWriter {
			return csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER, nil
		}
		return csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, nil
	case corev1.ReadOnlyMany:
		return csi.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY, nil
	case corev1.ReadWriteMany:
		return csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER, nil
	}
	return 0, fmt.Errorf("unknown access mode %q", mode)
}

// StopPod does what the kubelet does when a pod goes away: unpublish its
// volumes, drop them from the Node's volumesInUse, and let the pod object
// go (grace period 0, as the kubelet confirms termination).
func (n *Node) StopPod(ctx context.Context, p *Pod) error {
	conn, err := DialCSI(n.Socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, v := range p.volumes {
		if _, err := csi.NewNodeClient(conn).NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{
			VolumeId: v.handle, TargetPath: v.target,
		}); err != nil {
			return fmt.Errorf("NodeUnpublishVolume %s: %w", v.target, err)
		}
		if err := n.setVolumeInUse(ctx, n.bed.uniqueVolumeName(v.handle), false); err != nil {
			return err
		}
	}
	return n.bed.ForceDeletePod(ctx, p.Namespace, p.Name)
}

// ForceDeletePod removes a pod at once, as the kubelet does after the
// containers have stopped.
func (b *Bed) ForceDeletePod(ctx context.Context, namespace, name string) error {
	zero := int64(0)
	err := b.Cluster.Client.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func (b *Bed) uniqueVolumeName(handle string) corev1.UniqueVolumeName {
	return corev1.UniqueVolumeName("kubernetes.io/csi/" + b.DriverName + "^" + handle)
}

// setVolumeInUse adds or removes a volume in Node.status.volumesInUse. The
// attach/detach controller does not detach a volume that a node reports in
// use, so the kubelet's ordering (unmount, then detach) holds here too.
func (n *Node) setVolumeInUse(ctx context.Context, vol corev1.UniqueVolumeName, inUse bool) error {
	nodes := n.bed.Cluster.Client.CoreV1().Nodes()
	node, err := nodes.Get(ctx, n.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	list := slices.DeleteFunc(slices.Clone(node.Status.VolumesInUse), func(v corev1.UniqueVolumeName) bool { return v == vol })
	if inUse {
		list = append(list, vol)
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"volumesInUse": list}})
	if err != nil {
		return err
	}
	_, err = nodes.Patch(ctx, n.Name, types.MergePatchType, patch, metav1.PatchOptions{}, "status")
	return err
}
