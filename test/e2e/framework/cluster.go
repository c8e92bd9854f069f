//go:build e2e

package framework

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Bins are the paths of the control-plane and sidecar binaries that
// test/e2e/build-bins.sh builds.
type Bins struct {
	Etcd, APIServer, ControllerManager, Kubectl, Provisioner, Attacher, Resizer string
	// Scheduler is kube-scheduler, which only the real node's bed runs
	// (the stand-in's pods name their node).
	Scheduler string
	// Snapshots are external-snapshotter's binaries and CRDs (snapshots.go).
	Snapshots SnapshotBins
}

// BinsFromEnv reads the binary paths that test/e2e/guest.sh exports.
func BinsFromEnv() (Bins, error) {
	b := Bins{
		Etcd:              os.Getenv("E2E_ETCD"),
		APIServer:         os.Getenv("E2E_KUBE_APISERVER"),
		ControllerManager: os.Getenv("E2E_KUBE_CONTROLLER_MANAGER"),
		Kubectl:           os.Getenv("E2E_KUBECTL"),
		Provisioner:       os.Getenv("E2E_CSI_PROVISIONER"),
		Attacher:          os.Getenv("E2E_CSI_ATTACHER"),
		Resizer:           os.Getenv("E2E_CSI_RESIZER"),
		Scheduler:         os.Getenv("E2E_KUBE_SCHEDULER"),
	}
	if err := checkPaths(map[string]string{"E2E_ETCD": b.Etcd, "E2E_KUBE_APISERVER": b.APIServer,
		"E2E_KUBE_CONTROLLER_MANAGER": b.ControllerManager, "E2E_KUBECTL": b.Kubectl,
		"E2E_CSI_PROVISIONER": b.Provisioner, "E2E_CSI_ATTACHER": b.Attacher, "E2E_CSI_RESIZER": b.Resizer, "E2E_KUBE_SCHEDULER": b.Scheduler},
		"run the e2e tests with make e2e"); err != nil {
		return b, err
	}
	var err error
	b.Snapshots, err = snapshotBinsFromEnv()
	return b, err
}

// checkPaths checks that each environment variable of paths (name to
// value) is set and names something that exists; how says how to run the
// tests so that they are.
func checkPaths(paths map[string]string, how string) error {
	for name, p := range paths {
		if p == "" {
			return fmt.Errorf("%s is not set; %s", name, how)
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// Cluster is one Kubernetes control plane on loopback: etcd, kube-apiserver
// and kube-controller-manager, with no kubelet, scheduler or runtime.
type Cluster struct {
	Name string
	// Dir holds the cluster's PKI, etcd data and kubeconfigs.
	Dir string
	// LogDir receives one log file per process.
	LogDir string
	// PortBase: etcd listens on PortBase and PortBase+1, the apiserver on
	// PortBase+2. Two clusters need two bases.
	PortBase int

	PKI             *PKI
	AdminKubeconfig string
	Client          kubernetes.Interface
	Dynamic         dynamic.Interface
	RESTConfig      *rest.Config

	procs []*Process
}

// APIServerURL is where the cluster's apiserver listens.
func (c *Cluster) APIServerURL() string {
	return "https://127.0.0.1:" + strconv.Itoa(c.PortBase+2)
}

// Start brings the control plane up and waits until it serves and its
// ServiceAccount controller works.
func (c *Cluster) Start(ctx context.Context, bins Bins) error {
	var err error
	if c.PKI, err = NewPKI(filepath.Join(c.Dir, "pki")); err != nil {
		return fmt.Errorf("cluster %s: PKI: %w", c.Name, err)
	}
	etcdClient := "http://127.0.0.1:" + strconv.Itoa(c.PortBase)
	etcdPeer := "http://127.0.0.1:" + strconv.Itoa(c.PortBase+1)
	etcd, err := c.start("etcd", bins.Etcd,
		"--name=e2e", "--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+etcdClient, "--advertise-client-urls="+etcdClient,
		"--listen-peer-urls="+etcdPeer, "--initial-advertise-peer-urls="+etcdPeer,
		"--initial-cluster=e2e="+etcdPeer, "--unsafe-no-fsync", "--log-level=warn")
	if err != nil {
		return err
	}
	if err := poll(ctx, 60*time.Second, etcd, func() (bool, error) {
		resp, err := http.Get(etcdClient + "/health")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	}); err != nil {
		return fmt.Errorf("cluster %s: etcd not healthy: %w\n%s", c.Name, err, etcd.Tail(20))
	}

	p := c.PKI
	apiserverArgs := []string{
		"--etcd-servers=" + etcdClient,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(c.PortBase+2),
		// Loopback endpoints for the kubernetes Service are refused otherwise.
		"--endpoint-reconciler-type=none",
		"--cert-dir=" + filepath.Join(c.Dir, "apiserver-certs"),
		"--tls-cert-file=" + p.ServingCert, "--tls-private-key-file=" + p.ServingKey,
		"--client-ca-file=" + p.CACert,
		// exec, logs and port-forward through a real kubelet (the storage
		// suite execs into its pods): the admin's certificate, which the
		// kubelet's webhook authorization allows.
		"--kubelet-client-certificate=" + p.AdminCert, "--kubelet-client-key=" + p.AdminKey,
		// By the Node's InternalIP (the kubelet's --node-ip), not its name:
		// the guest has no DNS, and the storage suite's exec into its pods
		// failed with "lookup uml-node on 10.255.255.53:53: ... network is
		// unreachable".
		"--kubelet-preferred-address-types=InternalIP",
		// The chart's controller and node containers are privileged (mounts
		// need CAP_SYS_ADMIN); without this the apiserver refused its
		// Deployment and DaemonSet ("privileged: Forbidden: disallowed by
		// cluster policy") and helm install failed on the real node.
		"--allow-privileged=true",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.SAPub, "--service-account-signing-key-file=" + p.SAKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=Node,RBAC",
		"--v=1",
	}
	c.AdminKubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	if err := c.writeKubeconfig(c.AdminKubeconfig, func(a *clientcmdapi.AuthInfo) {
		a.ClientCertificate, a.ClientKey = p.AdminCert, p.AdminKey
	}); err != nil {
		return err
	}
	if c.RESTConfig, err = clientcmd.BuildConfigFromFlags("", c.AdminKubeconfig); err != nil {
		return err
	}
	c.RESTConfig.QPS, c.RESTConfig.Burst = 100, 200
	if c.Client, err = kubernetes.NewForConfig(c.RESTConfig); err != nil {
		return err
	}
	if c.Dynamic, err = dynamic.NewForConfig(c.RESTConfig); err != nil {
		return err
	}
	// The apiserver exits by itself when a start-up hook times out
	// ("PostStartHook start-service-ip-repair-controllers failed: unable to
	// perform initial IP and Port allocation check (timeout)"), which it did
	// under UML on a loaded machine; it is started again, on the same etcd
	// data, up to apiserverStarts times. The wait is a wait, not a measure:
	// there it took more than 5 minutes to get ready.
	const apiserverStarts = 3
	for start := 1; ; start++ {
		name := "kube-apiserver"
		if start > 1 {
			name = fmt.Sprintf("kube-apiserver-start%d", start)
		}
		apiserver, err := c.start(name, bins.APIServer, apiserverArgs...)
		if err != nil {
			return err
		}
		err = poll(ctx, 10*time.Minute, apiserver, func() (bool, error) {
			body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
			return err == nil && strings.TrimSpace(string(body)) == "ok", nil
		})
		if err == nil {
			break
		}
		if exited, _ := apiserver.Exited(); !exited || start == apiserverStarts {
			return fmt.Errorf("cluster %s: kube-apiserver not ready (start %d): %w\n%s", c.Name, start, err, apiserver.Tail(30))
		}
		fmt.Printf("cluster %s: kube-apiserver exited during start %d, starting it again: %s\n", c.Name, start, apiserver.Tail(1))
	}

	kcm, err := c.start("kube-controller-manager", bins.ControllerManager,
		"--kubeconfig="+c.AdminKubeconfig,
		"--leader-elect=false",
		// No kubelet posts node status here, so the node lifecycle
		// controller would taint every Node unreachable and evict its pods.
		"--controllers=*,-node-lifecycle-controller",
		"--service-account-private-key-file="+p.SAKey,
		"--root-ca-file="+p.CACert,
		"--use-service-account-credentials=false",
		// The default client rate limits hold PV binding to about 4 per second.
		"--kube-api-qps=200", "--kube-api-burst=400",
		"--secure-port=0",
		"--v=2")
	if err != nil {
		return err
	}
	// A wait: on the real-node bed under load, lists took a minute each
	// and the ServiceAccount took more than 3.
	if err := poll(ctx, 10*time.Minute, kcm, func() (bool, error) {
		_, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		return fmt.Errorf("cluster %s: kube-controller-manager did not create the default ServiceAccount: %w\n%s", c.Name, err, kcm.Tail(30))
	}
	return nil
}

// StartScheduler runs kube-scheduler against the started cluster, for pods
// that do not name their node (a Deployment's, a DaemonSet's). It does not
// wait: a pod that stays Pending shows it.
func (c *Cluster) StartScheduler(bins Bins) error {
	_, err := c.start("kube-scheduler", bins.Scheduler,
		"--kubeconfig="+c.AdminKubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--v=2")
	return err
}

// Stop ends every process of the cluster, newest first.
func (c *Cluster) Stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].Stop(10 * time.Second)
	}
	c.procs = nil
}

// StartComponent runs a process that belongs to this cluster (a sidecar), so
// that Stop ends it with the cluster.
func (c *Cluster) StartComponent(name, bin string, args ...string) (*Process, error) {
	return c.start(name, bin, args...)
}

func (c *Cluster) start(name, bin string, args ...string) (*Process, error) {
	p, err := StartProcess(c.LogDir, c.Name+"-"+name, bin, args...)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	return p, nil
}

// ServiceAccountKubeconfig writes a kubeconfig that authenticates as the
// ServiceAccount namespace/name with a token from the TokenRequest API, so a
// component runs with exactly the RBAC that account has.
func (c *Cluster) ServiceAccountKubeconfig(ctx context.Context, namespace, name string) (string, error) {
	expiry := int64(6 * 3600)
	tr, err := c.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("cluster %s: token for ServiceAccount %s/%s: %w", c.Name, namespace, name, err)
	}
	path := filepath.Join(c.Dir, "sa-"+namespace+"-"+name+".kubeconfig")
	return path, c.writeKubeconfig(path, func(a *clientcmdapi.AuthInfo) { a.Token = tr.Status.Token })
}

func (c *Cluster) writeKubeconfig(path string, auth func(*clientcmdapi.AuthInfo)) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[c.Name] = &clientcmdapi.Cluster{Server: c.APIServerURL(), CertificateAuthority: c.PKI.CACert}
	a := clientcmdapi.NewAuthInfo()
	auth(a)
	cfg.AuthInfos["user"] = a
	cfg.Contexts["default"] = &clientcmdapi.Context{Cluster: c.Name, AuthInfo: "user"}
	cfg.CurrentContext = "default"
	return clientcmd.WriteToFile(*cfg, path)
}

// poll runs cond every 200ms until it returns true, the timeout passes, or
// proc (when not nil) exits, which fails at once with the process's error.
func poll(ctx context.Context, timeout time.Duration, proc *Process, cond func() (bool, error)) error {
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		if proc != nil {
			if exited, err := proc.Exited(); exited {
				return false, fmt.Errorf("%s exited: %v", proc.Name, err)
			}
		}
		return cond()
	})
}
