package driver

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
)

// ClusterIDAuto as --cluster-id makes the controller find the cluster ID
// itself: the UID of the kube-system Namespace, read with its own
// ServiceAccount. It is what the chart's lookup used to pass, so an install
// that moves from `helm install` to `helm template`, Argo CD, Flux or deploy/
// keeps the ID its records carry.
const ClusterIDAuto = "auto"

// clusterIDNamespace is the Namespace whose UID is the cluster ID. It exists
// in every cluster, from its creation on, and is never deleted.
const clusterIDNamespace = "kube-system"

// clusterIDWait bounds the retries of --cluster-id=auto at start when the
// apiserver does not answer: an apiserver restarting with the cluster
// should not leave the controller without its ID.
const clusterIDWait = 30 * time.Second

// newKubeClient connects to the Kubernetes API with kubeconfig, or, when it
// is empty, with the pod's in-cluster configuration. (nil, nil) means there is
// no API to talk to: not in a pod, and no kubeconfig.
func newKubeClient(kubeconfig string) (kubernetes.Interface, error) {
	var cfg *rest.Config
	var err error
	if kubeconfig != "" {
		if cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
		}
	} else if cfg, err = rest.InClusterConfig(); err != nil {
		if errors.Is(err, rest.ErrNotInCluster) {
			return nil, nil
		}
		return nil, fmt.Errorf("in-cluster Kubernetes configuration: %w", err)
	}
	cfg.UserAgent = "nfs-csi-controller/" + Version()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build the Kubernetes client: %w", err)
	}
	return client, nil
}

// findClusterID reads the kube-system Namespace's UID. It retries errors that
// may pass (the apiserver not answering) for up to wait, and gives up at once
// on an answer: no such Namespace, or no permission to read it.
func findClusterID(ctx context.Context, client kubernetes.Interface, wait time.Duration) (string, error) {
	if client == nil {
		return "", errors.New("the controller has no Kubernetes API access (it does not run in a pod, and no --kubeconfig is given)")
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		ns, err := client.CoreV1().Namespaces().Get(ctx, clusterIDNamespace, metav1.GetOptions{})
		switch {
		case err == nil && ns.UID == "":
			return "", fmt.Errorf("the Namespace %s has no UID", clusterIDNamespace)
		case err == nil:
			return string(ns.UID), nil
		case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
			return "", fmt.Errorf("reading the Namespace %s was refused (%w): the controller's ServiceAccount needs get on namespaces, resourceNames [%s] (the chart grants it when clusterID is auto)", clusterIDNamespace, err, clusterIDNamespace)
		case apierrors.IsNotFound(err):
			return "", fmt.Errorf("the cluster has no Namespace %s: %w", clusterIDNamespace, err)
		}
		klog.InfoS("Waiting for the Kubernetes API to read the cluster ID", "namespace", clusterIDNamespace, "err", err)
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("reading the Namespace %s: %w", clusterIDNamespace, err)
		case <-time.After(2 * time.Second):
		}
	}
}
