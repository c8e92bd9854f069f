package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
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

// KubeAPI is what the controller reads from the Kubernetes API. It is two
// gets over client-go's REST transport, not client-go's typed clientset:
// that links every API group's types and registers them all in its scheme
// at start, which doubled the plugin's memory (node plugins included, which
// never talk to the API).
type KubeAPI interface {
	// NamespaceUID returns the UID of the Namespace name.
	NamespaceUID(ctx context.Context, name string) (string, error)
	// CSINodeDrivers returns the node ID of each driver that the CSINode
	// object name lists, by driver name.
	CSINodeDrivers(ctx context.Context, name string) (map[string]string, error)
}

// newKubeClient connects to the Kubernetes API with kubeconfig, or, when it
// is empty, with the pod's in-cluster configuration. (nil, nil) means there is
// no API to talk to: not in a pod, and no kubeconfig.
func newKubeClient(kubeconfig string) (KubeAPI, error) {
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
	client, err := newRESTKube(cfg)
	if err != nil {
		return nil, fmt.Errorf("build the Kubernetes client: %w", err)
	}
	return client, nil
}

// restKube is KubeAPI over HTTP, with the configuration's TLS,
// authentication and user agent.
type restKube struct {
	client *http.Client
	base   *url.URL
}

func newRESTKube(cfg *rest.Config) (restKube, error) {
	client, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return restKube{}, err
	}
	base, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return restKube{}, err
	}
	return restKube{client: client, base: base}, nil
}

func (k restKube) NamespaceUID(ctx context.Context, name string) (string, error) {
	var ns struct {
		Metadata struct {
			UID string `json:"uid"`
		} `json:"metadata"`
	}
	err := k.get(ctx, schema.GroupResource{Resource: "namespaces"}, "/api/v1/namespaces/"+url.PathEscape(name), name, &ns)
	return ns.Metadata.UID, err
}

func (k restKube) CSINodeDrivers(ctx context.Context, name string) (map[string]string, error) {
	var n struct {
		Spec struct {
			Drivers []struct {
				Name   string `json:"name"`
				NodeID string `json:"nodeID"`
			} `json:"drivers"`
		} `json:"spec"`
	}
	gr := schema.GroupResource{Group: "storage.k8s.io", Resource: "csinodes"}
	if err := k.get(ctx, gr, "/apis/storage.k8s.io/v1/csinodes/"+url.PathEscape(name), name, &n); err != nil {
		return nil, err
	}
	drivers := map[string]string{}
	for _, d := range n.Spec.Drivers {
		drivers[d.Name] = d.NodeID
	}
	return drivers, nil
}

// get reads the object at p into obj. An answer other than 200 is an
// *apierrors.StatusError, so apierrors.IsNotFound and IsForbidden hold.
func (k restKube) get(ctx context.Context, gr schema.GroupResource, p, name string, obj any) error {
	u := *k.base
	u.Path = path.Join(u.Path, p)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("read the answer to GET %s: %w", u.Path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var st metav1.Status
		if json.Unmarshal(body, &st) == nil && st.Kind == "Status" {
			return &apierrors.StatusError{ErrStatus: st}
		}
		return apierrors.NewGenericServerResponse(resp.StatusCode, http.MethodGet, gr, name, strings.TrimSpace(string(body)), 0, false)
	}
	if err := json.Unmarshal(body, obj); err != nil {
		return fmt.Errorf("decode the answer to GET %s: %w", u.Path, err)
	}
	return nil
}

// findClusterID reads the kube-system Namespace's UID. It retries errors that
// may pass (the apiserver not answering) for up to wait, and gives up at once
// on an answer: no such Namespace, or no permission to read it.
func findClusterID(ctx context.Context, client KubeAPI, wait time.Duration) (string, error) {
	if client == nil {
		return "", errors.New("the controller has no Kubernetes API access (it does not run in a pod, and no --kubeconfig is given)")
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		uid, err := client.NamespaceUID(ctx, clusterIDNamespace)
		switch {
		case err == nil && uid == "":
			return "", fmt.Errorf("the Namespace %s has no UID", clusterIDNamespace)
		case err == nil:
			return uid, nil
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
