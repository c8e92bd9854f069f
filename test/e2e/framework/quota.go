//go:build e2e

package framework

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/example/nfs-csi/pkg/agent/agenttest"
	"github.com/example/nfs-csi/pkg/driver"
)

// QuotaExport is an XFS file system with project quotas (mounted with
// prjquota, on a loop device over a sparse file in the guest's tmpfs),
// exported on its own beside the guest's tmpfs export, as an NFS server
// whose admin set up enforced capacity has it (docs/capacity.md).
//
// The tests run in a mount namespace of their own (test/uml/init.sh), and a
// mount made there is invisible to rpc.mountd and nfsd, which resolve
// export paths in the guest's first namespace. So the file system is
// mounted there, the agent runs there (with / read-only, as the tests'),
// and the tests reach the server's files through /proc/1/root.
type QuotaExport struct {
	// Path is the export on the server, as exports, the StorageClass's
	// share and the agent's --root name it.
	Path string
	// Dir is the same directory as the tests reach it.
	Dir string
}

// serverNS is the command line that runs argv in the NFS server's mount
// namespace.
func serverNS(argv ...string) []string {
	return append([]string{"nsenter", "--mount=/proc/1/ns/mnt", "--"}, argv...)
}

func runCmd(argv ...string) error {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", strings.Join(argv, " "), err, out)
	}
	return nil
}

// NewQuotaExport makes the file system (image in scratch), mounts it at
// path on the server and exports it to 127.0.0.1 with fsid.
func NewQuotaExport(scratch, path string, fsid int) (*QuotaExport, error) {
	q := &QuotaExport{Path: path, Dir: "/proc/1/root" + path}
	img := filepath.Join(scratch, "quota-export.img")
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return nil, err
	}
	// mkfs.xfs refuses file systems under 300 MB; the blocks the tests
	// write live in guest memory.
	for _, argv := range [][]string{{"modprobe", "-a", "loop", "xfs"}, {"truncate", "-s", "320M", img}} {
		if err := runCmd(argv...); err != nil {
			return nil, err
		}
	}
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("losetup %s: %w\n%s", img, err, out)
	}
	dev := strings.TrimSpace(string(out))
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, err
	}
	for _, argv := range [][]string{
		{"mkfs.xfs", "-q", "-f", dev},
		serverNS("mount", "-t", "xfs", "-o", "prjquota", dev, path),
		// The controller creates and deletes the volume directories as root.
		{"exportfs", "-o", fmt.Sprintf("rw,insecure,no_root_squash,no_subtree_check,fsid=%d", fsid), "127.0.0.1:" + path},
	} {
		if err := runCmd(argv...); err != nil {
			return nil, err
		}
	}
	return q, nil
}

// QuotaAgent is `nfs-csi agent` on the NFS server, run as
// deploy/agent/nfs-csi-agent.service runs it: the unit's ExecStart with its
// EnvironmentFile, and /etc/nfs-csi moved to a directory of the bed (the
// guest's /etc is the host's, read-only). Its certificates come from a CA
// of its own, as an admin makes them (docs/capacity.md).
type QuotaAgent struct {
	// Address is the --listen address, host:port, as StorageClasses name it.
	Address string
	// PKI is the CA that signed the agent's certificate and signs its clients'.
	PKI *agenttest.PKI
	// ClientPair is the controller's client certificate, as the Secret holds it.
	ClientPair agenttest.Pair
	Proc       *Process
	argv       []string
	logDir     string
	starts     int
}

// The unit file's paths that the bed moves.
const (
	unitBinary = "/usr/local/bin/nfs-csi"
	unitEtc    = "/etc/nfs-csi/"
)

// NewQuotaAgent writes the agent's certificates and its environment file
// (agent.env: roots, listen address, project ID range) into dir, reads
// ExecStart from the unit file, and starts the agent with the driver
// binary.
func NewQuotaAgent(ctx context.Context, unitFile, driverBin, dir, logDir, address, projectIDs string, roots ...string) (*QuotaAgent, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	pki, _, _, _, err := agenttest.AgentFiles(dir)
	if err != nil {
		return nil, err
	}
	pair, err := pki.Client("nfs-csi-controller")
	if err != nil {
		return nil, err
	}
	var rootWords []string
	for _, r := range roots {
		rootWords = append(rootWords, "--root "+r)
	}
	env := map[string]string{
		"NFS_CSI_AGENT_ROOTS":       strings.Join(rootWords, " "),
		"NFS_CSI_AGENT_LISTEN":      address,
		"NFS_CSI_AGENT_PROJECT_IDS": projectIDs,
	}
	var envFile strings.Builder
	for _, k := range []string{"NFS_CSI_AGENT_ROOTS", "NFS_CSI_AGENT_LISTEN", "NFS_CSI_AGENT_PROJECT_IDS"} {
		fmt.Fprintf(&envFile, "%s=%s\n", k, env[k])
	}
	if err := os.WriteFile(filepath.Join(dir, "agent.env"), []byte(envFile.String()), 0o600); err != nil {
		return nil, err
	}
	args, err := unitCommand(unitFile, env)
	if err != nil {
		return nil, err
	}
	for i, a := range args {
		switch {
		case a == unitBinary:
			args[i] = driverBin
		case strings.HasPrefix(a, unitEtc):
			args[i] = filepath.Join(dir, strings.TrimPrefix(a, unitEtc))
		}
	}
	a := &QuotaAgent{Address: address, PKI: pki, ClientPair: pair, logDir: logDir,
		argv: serverNS(append([]string{"unshare", "-m", "--propagation", "private", "--",
			"sh", "-c", `mount -o remount,bind,ro / && exec "$0" "$@"`}, args...)...)}
	return a, a.Start(ctx)
}

// unitCommand reads ExecStart of a systemd unit and expands it as systemd
// does: $NAME is split into words, ${NAME} stays one word.
func unitCommand(unitFile string, env map[string]string) ([]string, error) {
	b, err := os.ReadFile(unitFile)
	if err != nil {
		return nil, err
	}
	var line string
	sc := bufio.NewScanner(strings.NewReader(strings.ReplaceAll(string(b), "\\\n", " ")))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "ExecStart=") {
			line = strings.TrimPrefix(l, "ExecStart=")
		}
	}
	if line == "" {
		return nil, fmt.Errorf("%s has no ExecStart", unitFile)
	}
	var args []string
	for _, w := range strings.Fields(line) {
		if strings.HasPrefix(w, "$") && !strings.HasPrefix(w, "${") {
			v, ok := env[w[1:]]
			if !ok {
				return nil, fmt.Errorf("%s: ExecStart uses $%s, which the bed's agent.env does not set", unitFile, w[1:])
			}
			args = append(args, strings.Fields(v)...)
			continue
		}
		var missing string
		w = os.Expand(w, func(k string) string {
			v, ok := env[k]
			if !ok {
				missing = k
			}
			return v
		})
		if missing != "" {
			return nil, fmt.Errorf("%s: ExecStart uses ${%s}, which the bed's agent.env does not set", unitFile, missing)
		}
		args = append(args, w)
	}
	return args, nil
}

// Start starts the agent (again) and waits until it listens.
func (a *QuotaAgent) Start(ctx context.Context) error {
	a.starts++
	var err error
	if a.Proc, err = StartProcess(a.logDir, fmt.Sprintf("quota-agent-%d", a.starts), a.argv[0], a.argv[1:]...); err != nil {
		return err
	}
	err = poll(ctx, 30*time.Second, a.Proc, func() (bool, error) {
		c, err := net.DialTimeout("tcp", a.Address, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("the quota agent does not listen on %s: %w\n%s", a.Address, err, a.Proc.Tail(20))
	}
	return nil
}

// Stop ends the agent, as `systemctl stop nfs-csi-agent` does.
func (a *QuotaAgent) Stop() { a.Proc.Stop(controllerStopWait) }

// CreateAgentSecret stores the agent's client certificate for the
// controller in namespace/name, as docs/capacity.md has the admin do:
// a kubernetes.io/tls Secret with the CA that signed the agent's
// certificate.
func (b *Bed) CreateAgentSecret(ctx context.Context, namespace, name string, a *QuotaAgent) error {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Type:       corev1.SecretTypeTLS,
		Data: map[string][]byte{
			driver.SecretAgentCert: a.ClientPair.CertPEM,
			driver.SecretAgentKey:  a.ClientPair.KeyPEM,
			driver.SecretAgentCA:   a.PKI.CAPEM,
		},
	}
	_, err := b.Cluster.Client.CoreV1().Secrets(namespace).Create(ctx, s, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}
