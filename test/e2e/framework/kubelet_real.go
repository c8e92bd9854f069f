//go:build e2e

package framework

import (
	"bufio"
	"context"
	"fmt"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The real node's fixed addresses; test/uml/init.sh sets them up when
// UML_NODE=1 (keep in sync).
const (
	// NodeNFSAddr is the NFS server's address for pods and for the node:
	// a dummy interface of the guest, exported like 127.0.0.1.
	NodeNFSAddr = "10.99.0.1"
	// NodePodCIDR is the CNI bridge's pod network, also exported.
	NodePodCIDR = "10.88.0.0/16"
	// SquashExport is the root_squash export of the guest.
	SquashExport = "/run/export-squash"
	// KubeletDir is the kubelet's --root-dir: the chart's default kubeletDir.
	KubeletDir = "/var/lib/kubelet"
	// containerdSock is where containerd serves the CRI.
	containerdSock = "/run/containerd/containerd.sock"
)

// RealNodeConfig is what a real node needs besides the cluster: the kubelet
// binary and the images to import (test/e2e/build-images.sh's list).
type RealNodeConfig struct {
	Kubelet string
	// Images lists "REFERENCE OCI-ARCHIVE" lines.
	Images string
}

// RealNodeConfigFromEnv reads E2E_KUBELET and E2E_IMAGES (hack/e2e-env.sh).
func RealNodeConfigFromEnv() (RealNodeConfig, error) {
	c := RealNodeConfig{Kubelet: os.Getenv("E2E_KUBELET"), Images: os.Getenv("E2E_IMAGES")}
	return c, checkPaths(map[string]string{"E2E_KUBELET": c.Kubelet, "E2E_IMAGES": c.Images},
		"run the real-node tests with make e2e-node")
}

// RealNode is a real kubelet v1.37 with Debian's containerd 1.6 and runc,
// running in the UML guest next to the control plane: it registers the
// Node and runs pods, the chart's among them.
type RealNode struct {
	Name       string
	Cluster    *Cluster
	Containerd *Process
	Kubelet    *Process
	dir        string
	cfg        RealNodeConfig
	// starts counts StartKubelet calls: each start logs to its own file.
	starts int
}

// NewRealNode describes the real node named name of cluster c; nothing runs
// yet, and the cluster need not be started: StartRuntime can run while it
// starts, StartKubelet after.
func NewRealNode(c *Cluster, cfg RealNodeConfig, name string) *RealNode {
	return &RealNode{Name: name, Cluster: c, dir: filepath.Join(c.Dir, "node-"+name), cfg: cfg}
}

// StartRuntime prepares the guest, starts containerd and imports the images,
// which under UML takes minutes.
func (n *RealNode) StartRuntime(ctx context.Context) error {
	if err := n.prepare(); err != nil {
		return err
	}
	var err error
	t0 := time.Now()
	if n.Containerd, err = StartProcess(n.Cluster.LogDir, n.Cluster.Name+"-containerd", "containerd", "--config", filepath.Join(n.dir, "containerd.toml")); err != nil {
		return err
	}
	if err := poll(ctx, 2*time.Minute, n.Containerd, func() (bool, error) {
		return exec.CommandContext(ctx, "ctr", "--address", containerdSock, "version").Run() == nil, nil
	}); err != nil {
		return fmt.Errorf("containerd not serving on %s: %w\n%s", containerdSock, err, n.Containerd.Tail(20))
	}
	fmt.Printf("real node %s: containerd ready in %.1fs\n", n.Name, time.Since(t0).Seconds())
	t0 = time.Now()
	if err := n.importImages(ctx); err != nil {
		return err
	}
	fmt.Printf("real node %s: images imported in %.1fs\n", n.Name, time.Since(t0).Seconds())
	return nil
}

// Stop ends the kubelet and containerd; the containers' shims stay until
// the guest powers off.
func (n *RealNode) Stop() {
	n.Kubelet.Stop(30 * time.Second)
	n.Containerd.Stop(30 * time.Second)
}

// prepare writes the configuration of containerd and CNI, and shares the mount namespace's mounts with the containers.
func (n *RealNode) prepare() error {
	// The test runs in a private mount namespace (test/uml/init.sh);
	// Bidirectional propagation needs the kubelet dir on a shared mount.
	if out, err := exec.Command("mount", "--make-rshared", "/").CombinedOutput(); err != nil {
		return fmt.Errorf("mount --make-rshared /: %v: %s", err, out)
	}
	if err := n.fakeClockSpeed(); err != nil {
		return err
	}
	cniDir := filepath.Join(n.dir, "cni")
	shim := filepath.Join(n.dir, "bin")
	for _, d := range []string{cniDir, shim, filepath.Join(KubeletDir, "volumeplugins")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// nftables does not work with this UML kernel: the kubelet and the CNI
	// plugins find iptables-legacy first on PATH. (Never switch the guest's
	// /etc/alternatives: it is the host's.)
	for _, t := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
		if err := os.Symlink("/usr/sbin/"+strings.Replace(t, "tables", "tables-legacy", 1), filepath.Join(shim, t)); err != nil && !os.IsExist(err) {
			return err
		}
	}
	if err := os.Setenv("PATH", shim+":"+os.Getenv("PATH")); err != nil {
		return err
	}
	if err := n.serviceProxy(); err != nil {
		return err
	}
	files := map[string]string{
		filepath.Join(n.dir, "containerd.toml"): fmt.Sprintf(`version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = %q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.6"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
`, containerdSock, cniDir),
		filepath.Join(cniDir, "10-bridge.conflist"): fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "e2e-pods",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "loopback"}
  ]
}
`, NodePodCIDR),
	}
	for path, content := range files {
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// fakeClockSpeed gives the kubelet's cAdvisor a CPU clock speed: UML's
// /proc/cpuinfo has no "cpu MHz" line and no cpufreq in sysfs, and the
// kubelet then fails to start ("could not detect clock speed"). A copy with
// the line is bind-mounted over /proc/cpuinfo in this mount namespace only.
func (n *RealNode) fakeClockSpeed() error {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return err
	}
	if strings.Contains(string(b), "cpu MHz") {
		return nil
	}
	var out strings.Builder
	for _, line := range strings.SplitAfter(string(b), "\n") {
		out.WriteString(line)
		if strings.HasPrefix(line, "processor") {
			out.WriteString("cpu MHz\t\t: 1000.000\n")
		}
	}
	fake := filepath.Join(n.dir, "cpuinfo")
	if err := os.MkdirAll(n.dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(fake, []byte(out.String()), 0o444); err != nil {
		return err
	}
	if out, err := exec.Command("mount", "--bind", fake, "/proc/cpuinfo").CombinedOutput(); err != nil {
		return fmt.Errorf("mount --bind %s /proc/cpuinfo: %v: %s", fake, err, out)
	}
	return nil
}

// serviceProxy stands in for kube-proxy, which the bed does not run, for the
// one Service pods need: "kubernetes" (10.0.0.1:443, the first address of
// the apiserver's --service-cluster-ip-range), which in-cluster clients such
// as the chart's sidecars dial. The apiserver listens on loopback only, so
// the rule DNATs to 127.0.0.1, which route_localnet allows for packets that
// come from the pods' bridge.
func (n *RealNode) serviceProxy() error {
	port := n.Cluster.APIServerURL()[strings.LastIndex(n.Cluster.APIServerURL(), ":")+1:]
	for _, f := range []string{"/proc/sys/net/ipv4/conf/all/route_localnet", "/proc/sys/net/ipv4/conf/default/route_localnet", "/proc/sys/net/ipv4/ip_forward"} {
		if err := os.WriteFile(f, []byte("1"), 0o644); err != nil {
			return err
		}
	}
	out, err := exec.Command("iptables-legacy", "-t", "nat", "-A", "PREROUTING", "-d", "10.0.0.1/32", "-p", "tcp", "--dport", "443",
		"-j", "DNAT", "--to-destination", "127.0.0.1:"+port).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables-legacy DNAT for the kubernetes Service: %v: %s", err, out)
	}
	return nil
}

// importImages loads every archive of the list into containerd's k8s.io
// namespace, under its reference.
func (n *RealNode) importImages(ctx context.Context) error {
	f, err := os.Open(n.cfg.Images)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ref, archive, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok {
			continue
		}
		// An OCI archive names its image in org.opencontainers.image.ref.name;
		// ctr keeps such a full name only under a matching --base-name.
		base := ref[:strings.LastIndex(ref, ":")]
		out, err := exec.CommandContext(ctx, "ctr", "--address", containerdSock, "-n", "k8s.io",
			"images", "import", "--base-name", base, archive).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ctr images import %s (%s): %v: %s", archive, ref, err, out)
		}
		if out, err := exec.CommandContext(ctx, "ctr", "--address", containerdSock, "-n", "k8s.io",
			"images", "check", "name=="+ref).CombinedOutput(); err != nil || !strings.Contains(string(out), ref) {
			return fmt.Errorf("image %s not in containerd after importing %s: %v: %s", ref, archive, err, out)
		}
	}
	return sc.Err()
}

// StartKubelet starts the kubelet (again, after StopKubelet) against the
// started cluster and waits until its Node is Ready.
func (n *RealNode) StartKubelet(ctx context.Context) error {
	config := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# containerd 1.6 does not answer the RuntimeConfig call: the kubelet uses this.
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://%s
# The guest's cgroup v2 has no cpuset controller; QoS cgroups would need it.
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %q}
authorization: {mode: Webhook}
# No registry: an image removed by the garbage collector could not come back.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {"memory.available": "1Mi"}
volumePluginDir: %s/volumeplugins
readOnlyPort: 0
serializeImagePulls: false
# One CPU for the whole bed: renew the Lease every 30 s instead of 10, and
# post an unchanged status every 5 minutes. No node-lifecycle controller
# runs here to act on either.
nodeLeaseDurationSeconds: 120
nodeStatusReportFrequency: 5m
`, containerdSock, n.Cluster.PKI.CACert, KubeletDir)
	if err := os.WriteFile(filepath.Join(n.dir, "kubelet.yaml"), []byte(config), 0o644); err != nil {
		return err
	}
	var err error
	n.starts++
	logName := n.Cluster.Name + "-kubelet-" + n.Name
	if n.starts > 1 {
		logName += fmt.Sprintf("-start%d", n.starts)
	}
	n.Kubelet, err = StartProcess(n.Cluster.LogDir, logName, n.cfg.Kubelet,
		"--config="+filepath.Join(n.dir, "kubelet.yaml"),
		"--kubeconfig="+n.Cluster.AdminKubeconfig,
		"--root-dir="+KubeletDir,
		"--hostname-override="+n.Name,
		// Not loopback, which the kubelet refuses as a node IP.
		"--node-ip="+NodeNFSAddr,
		"--v=2")
	if err != nil {
		return err
	}
	return n.WaitReady(ctx, 5*time.Minute)
}

// StopKubelet stops the kubelet; containers keep running, as they do when
// a real kubelet restarts.
func (n *RealNode) StopKubelet() {
	n.Kubelet.Stop(30 * time.Second)
}

// WaitReady waits until the Node reports Ready.
func (n *RealNode) WaitReady(ctx context.Context, timeout time.Duration) error {
	var last string
	err := poll(ctx, timeout, n.Kubelet, func() (bool, error) {
		node, err := n.Cluster.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				last = fmt.Sprintf("Ready=%s: %s", c.Status, c.Message)
				return c.Status == corev1.ConditionTrue, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("node %s not Ready (%s): %w\n%s", n.Name, last, err, n.Kubelet.Tail(30))
	}
	return n.untaintNotReady(ctx)
}

// untaintNotReady removes the node.kubernetes.io/not-ready taint from a
// Ready Node, as the node-lifecycle controller does. The apiserver's
// TaintNodesByCondition admission plugin puts that taint on every new Node,
// and the bed runs no node-lifecycle controller (the control-plane bed's
// stand-in nodes post no status, and it would evict their pods): the chart's
// controller pods, which tolerate no taint, stayed Pending with "1 node(s)
// had untolerated taint(s)" on the first real-node run.
func (n *RealNode) untaintNotReady(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		node, err := n.Cluster.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("node %s: %w", n.Name, err)
		}
		var kept []corev1.Taint
		for _, t := range node.Spec.Taints {
			if t.Key != corev1.TaintNodeNotReady {
				kept = append(kept, t)
			}
		}
		if len(kept) == len(node.Spec.Taints) {
			return nil
		}
		node.Spec.Taints = kept
		_, err = n.Cluster.Client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
		if err == nil {
			return nil
		}
		if !apierrors.IsConflict(err) || attempt == 10 {
			return fmt.Errorf("node %s: remove the %s taint: %w", n.Name, corev1.TaintNodeNotReady, err)
		}
	}
}
