package driver

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	k8stesting "k8s.io/client-go/testing"

	"github.com/example/nfs-csi/pkg/nfs"
)

const kubeSystemUID = "4c1d7a52-0000-4000-8000-kube-system"

func kubeSystem() *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kube-system", UID: kubeSystemUID}}
}

// clientsetAPI is KubeAPI over a client-go clientset: the tests' fake one.
type clientsetAPI struct{ c kubernetes.Interface }

func (a clientsetAPI) NamespaceUID(ctx context.Context, name string) (string, error) {
	ns, err := a.c.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	return string(ns.UID), nil
}

func (a clientsetAPI) CSINodeDrivers(ctx context.Context, name string) (map[string]string, error) {
	n, err := a.c.StorageV1().CSINodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	drivers := map[string]string{}
	for _, d := range n.Spec.Drivers {
		drivers[d.Name] = d.NodeID
	}
	return drivers, nil
}

// The controller's own client reads what the typed clientset read, from an
// apiserver's JSON, and its refusals are the API's errors.
func TestRESTKube(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/namespaces/kube-system":
			_, _ = w.Write([]byte(`{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"kube-system","uid":"` + kubeSystemUID + `"}}`))
		case "/apis/storage.k8s.io/v1/csinodes/node-a":
			_, _ = w.Write([]byte(`{"kind":"CSINode","apiVersion":"storage.k8s.io/v1","metadata":{"name":"node-a"},"spec":{"drivers":[{"name":"nfs.csi.example.io","nodeID":"node-a"}]}}`))
		case "/api/v1/namespaces/forbidden":
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"namespaces \"forbidden\" is forbidden","reason":"Forbidden","code":403}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte("404 page not found"))
		}
	}))
	defer srv.Close()
	k, err := newRESTKube(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if uid, err := k.NamespaceUID(ctx, "kube-system"); err != nil || uid != kubeSystemUID {
		t.Errorf("NamespaceUID = %q, %v; want %q", uid, err, kubeSystemUID)
	}
	if drivers, err := k.CSINodeDrivers(ctx, "node-a"); err != nil || drivers["nfs.csi.example.io"] != "node-a" {
		t.Errorf("CSINodeDrivers = %v, %v", drivers, err)
	}
	if _, err := k.NamespaceUID(ctx, "forbidden"); !apierrors.IsForbidden(err) {
		t.Errorf("NamespaceUID of a forbidden Namespace = %v, want Forbidden", err)
	}
	if _, err := k.CSINodeDrivers(ctx, "node-z"); !apierrors.IsNotFound(err) {
		t.Errorf("CSINodeDrivers of a missing CSINode = %v, want NotFound", err)
	}
}

// controllerWithKube is a controller-only driver on the env's export whose
// Kubernetes API is client.
func (e *env) controllerWithKube(t *testing.T, clusterID string, client *fake.Clientset) *Driver {
	t.Helper()
	d, err := New(Config{
		Mode: ModeController, WorkDir: t.TempDir(), Mounter: e.fake, MountHelper: e.helper,
		ClusterID: clusterID, KubeClient: clientsetAPI{client},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

// --cluster-id=auto used not to exist: "auto" was taken for the cluster ID
// itself, and the chart's only source of the ID was Helm's lookup, which
// helm template, Argo CD, Flux and deploy/ do not run.
func TestRegressionClusterIDAuto(t *testing.T) {
	forbidden := func(c *fake.Clientset) {
		c.PrependReactor("get", "namespaces", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "namespaces"}, "kube-system", errors.New("RBAC: access denied"))
		})
	}
	tests := []struct {
		name    string
		flag    string
		objects []runtime.Object
		react   func(*fake.Clientset)
		want    string
	}{
		{"auto reads the kube-system UID", ClusterIDAuto, []runtime.Object{kubeSystem()}, nil, kubeSystemUID},
		{"an explicit ID wins", "prod-east-1", []runtime.Object{kubeSystem()}, nil, "prod-east-1"},
		{"no kube-system Namespace", ClusterIDAuto, nil, nil, ""},
		{"no RBAC", ClusterIDAuto, []runtime.Object{kubeSystem()}, forbidden, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			client := fake.NewClientset(tc.objects...)
			if tc.react != nil {
				tc.react(client)
			}
			e := newEnv(t)
			start := time.Now()
			d := e.controllerWithKube(t, tc.flag, client)
			if d.cfg.ClusterID != tc.want {
				t.Errorf("cluster ID %q, want %q", d.cfg.ClusterID, tc.want)
			}
			if tc.want == "" && time.Since(start) > clusterIDWait/2 {
				t.Errorf("a definite answer was retried for %v", time.Since(start))
			}
		})
	}
}

// When auto finds no cluster ID, every refusal names the missing setting.
func TestClusterIDAutoFailureNamedInRefusals(t *testing.T) {
	e := newEnv(t)
	a := e.controllerWithKube(t, ClusterIDAuto, fake.NewClientset(kubeSystem()))
	vol, err := a.CreateVolume(context.Background(), createReq("pvc-1", baseParams()))
	if err != nil {
		t.Fatal(err)
	}
	orphan := e.controllerWithKube(t, ClusterIDAuto, fake.NewClientset())
	err = deleteVolume(orphan, vol.GetVolume().GetVolumeId())
	wantCode(t, err, codes.FailedPrecondition)
	wantMessageContains(t, err, kubeSystemUID, "without --cluster-id", "--cluster-id=auto", "namespaces/kube-system", "clusterID")
	_, err = orphan.CreateVolume(context.Background(), createReq("pvc-1", baseParams()))
	wantCode(t, err, codes.AlreadyExists)
	wantMessageContains(t, err, kubeSystemUID, "--cluster-id=auto", "clusterID")
}

// A controller on its own used to trust every node ID (anyNode); with API
// access it now answers NotFound for a node whose CSINode does not list the
// driver.
func TestRegressionPublishChecksCSINode(t *testing.T) {
	csiNode := func(name string, drivers ...storagev1.CSINodeDriver) *storagev1.CSINode {
		return &storagev1.CSINode{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: storagev1.CSINodeSpec{Drivers: drivers}}
	}
	ours := func(nodeID string) storagev1.CSINodeDriver {
		return storagev1.CSINodeDriver{Name: DefaultDriverName, NodeID: nodeID}
	}
	client := fake.NewClientset(
		csiNode("node-a", ours("node-a")),
		csiNode("node-b", storagev1.CSINodeDriver{Name: "other.csi.example.io", NodeID: "node-b"}),
		csiNode("node-c"),
	)
	e := newEnv(t)
	d := e.controllerWithKube(t, "", client)
	tests := []struct {
		node string
		want codes.Code
	}{
		{"node-a", codes.OK},
		{"node-b", codes.NotFound}, // another driver only
		{"node-c", codes.NotFound}, // no drivers yet
		{"node-d", codes.NotFound}, // no CSINode
	}
	for _, tc := range tests {
		t.Run(tc.node, func(t *testing.T) {
			_, err := d.ControllerPublishVolume(context.Background(), &csi.ControllerPublishVolumeRequest{
				VolumeId: volumeIDFor("pvc-1", "delete"), NodeId: tc.node, VolumeCapability: rwo(),
			})
			wantCode(t, err, tc.want)
			if err != nil {
				wantMessageContains(t, err, tc.node)
			}
		})
	}

	client.PrependReactor("get", "csinodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "storage.k8s.io", Resource: "csinodes"}, "node-a", errors.New("RBAC"))
	})
	_, err := d.ControllerPublishVolume(context.Background(), &csi.ControllerPublishVolumeRequest{
		VolumeId: volumeIDFor("pvc-1", "delete"), NodeId: "node-a", VolumeCapability: rwo(),
	})
	wantCode(t, err, codes.Unavailable)
	wantMessageContains(t, err, "node-a", "csinodes")
}

func TestKubeconfigThatDoesNotWorkStopsTheController(t *testing.T) {
	_, err := New(Config{Mode: ModeController, WorkDir: t.TempDir(), Mounter: nfs.NewFakeMounter(nil),
		ClusterID: ClusterIDAuto, Kubeconfig: filepath.Join(t.TempDir(), "missing")})
	if err == nil || !strings.Contains(err.Error(), "--kubeconfig") {
		t.Fatalf("New = %v, want an error naming --kubeconfig", err)
	}
}

func TestNoAPIAccessMeansNoClusterIDAndTrustedNodes(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	d, err := New(Config{Mode: ModeController, WorkDir: t.TempDir(), Mounter: nfs.NewFakeMounter(nil), ClusterID: ClusterIDAuto})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	if d.cfg.ClusterID != "" {
		t.Errorf("cluster ID %q without API access, want none", d.cfg.ClusterID)
	}
	if _, ok := d.nodes.(anyNode); !ok {
		t.Errorf("node registry %T without API access, want anyNode", d.nodes)
	}
}
