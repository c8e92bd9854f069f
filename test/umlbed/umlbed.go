// Package umlbed sets up, inside the UML guest of test/uml/run.sh, what the
// harness itself does not: an export of a file system of its own with
// project quotas, and the quota agent (nfs-csi agent) serving it with mTLS
// certificates. The integration tests (test/integration) and the benchmark
// (test/bench) share it.
//
// The guest's command runs in a mount namespace of its own
// (test/uml/init.sh), and a mount made there is invisible to rpc.mountd and
// nfsd, which resolve export paths in the guest's first namespace. So the
// file system is mounted there (ServerNS), the agent runs there (in a child
// namespace with / read-only, like the command), and the command reaches
// the files through /proc/1/root.
package umlbed

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/example/nfs-csi/pkg/agent/agenttest"
	"github.com/example/nfs-csi/pkg/driver"
)

// ServerNS is the command line that runs args in the NFS server's mount
// namespace.
func ServerNS(args ...string) []string {
	return append([]string{"nsenter", "--mount=/proc/1/ns/mnt", "--"}, args...)
}

// Run runs argv and returns its trimmed combined output; the error carries
// the command line and the output.
func Run(argv ...string) (string, error) {
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

// Export is a file system with project quotas on a loop device, mounted
// with prjquota at $NFS_EXPORT_DIR/<name> and exported on its own, so that
// NFSv3 reaches it as $NFS_EXPORT_DIR/<name> and NFSv4 as /<name> below the
// pseudo-root.
type Export struct {
	Kind    string // xfs or ext4
	Path    string // the path on the server, as exports and the agent see it
	Dir     string // the same directory as the command reaches it
	V3Share string
	V4Share string
	dev     string
	img     string
	client  string
}

// NewExport makes a file system of kind (xfs or ext4) of size (a truncate
// size: mkfs.xfs refuses file systems under 300 MB) on a sparse image in
// the guest's /tmp, and exports it as name with fsid. What it made is
// undone by Close, also when it fails half-way.
func NewExport(kind, name, size string, fsid int) (x *Export, err error) {
	if _, err := Run("modprobe", "loop"); err != nil {
		return nil, err
	}
	x = &Export{Kind: kind, img: filepath.Join("/tmp", name+".img")}
	defer func() {
		if err != nil {
			x.Close(func(string, ...any) {})
			x = nil
		}
	}()
	if _, err = Run("truncate", "-s", size, x.img); err != nil {
		return x, err
	}
	if x.dev, err = Run("losetup", "-f", "--show", x.img); err != nil {
		return x, err
	}
	if kind == "xfs" {
		_, err = Run("mkfs.xfs", "-q", "-f", x.dev)
	} else {
		_, err = Run("mkfs.ext4", "-q", "-F", "-O", "quota,project", x.dev)
	}
	if err != nil {
		return x, err
	}
	path := filepath.Join(os.Getenv("NFS_EXPORT_DIR"), name)
	if err = os.Mkdir(path, 0o755); err != nil {
		return x, err
	}
	x.Path, x.Dir, x.V3Share, x.V4Share = path, "/proc/1/root"+path, path, "/"+name
	if _, err = Run(ServerNS("mount", "-t", kind, "-o", "prjquota", x.dev, path)...); err != nil {
		return x, err
	}
	client := os.Getenv("NFS_SERVER") + ":" + path
	if _, err = Run("exportfs", "-o", fmt.Sprintf("rw,insecure,no_root_squash,no_subtree_check,fsid=%d", fsid), client); err != nil {
		return x, err
	}
	x.client = client
	return x, nil
}

// Close withdraws the export, unmounts the file system and removes its
// image; logf reports a mount it had to detach.
func (x *Export) Close(logf func(format string, args ...any)) {
	if x.client != "" {
		_ = exec.Command("exportfs", "-u", x.client).Run()
		_ = exec.Command("exportfs", "-f").Run()
	}
	if x.Path != "" {
		// nfsd lets go of the file system's files a moment after the
		// export is withdrawn (NFSv4 state until the client's unmount ends).
		for i := 0; ; i++ {
			_, err := Run(ServerNS("umount", x.Path)...)
			if err == nil || strings.Contains(err.Error(), "not mounted") {
				break
			}
			if i == 10 {
				logf("unmount %s: %v; detaching it", x.Path, err)
				_, _ = Run(ServerNS("umount", "-l", x.Path)...)
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		_ = os.Remove(x.Path)
	}
	if x.dev != "" {
		_ = exec.Command("losetup", "-d", x.dev).Run()
	}
	_ = os.Remove(x.img)
}

// Roots are the agent's --root flags for both ways of naming the export.
func (x *Export) Roots() []string {
	return []string{x.V3Share, x.V4Share + "=" + x.Path}
}

// FreeLoopbackAddr is a TCP address on 127.0.0.1 that was free a moment ago.
func FreeLoopbackAddr() (string, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer lis.Close()
	return lis.Addr().String(), nil
}

// Agent is bin/nfs-csi agent on loopback, as the unit file runs it, with a
// fresh CA that signs its certificate and its clients'.
type Agent struct {
	Addr string
	PKI  *agenttest.PKI
	// Output takes the agent's output; nil is the command's stderr.
	Output io.Writer
	binary string
	args   []string
	cmd    *exec.Cmd
}

// StartAgent is NewAgent, then Start.
func StartAgent(binary, dir string, roots []string, ids string) (*Agent, error) {
	a, err := NewAgent(binary, dir, roots, ids)
	if err != nil {
		return nil, err
	}
	return a, a.Start()
}

// NewAgent writes the agent's certificates into dir and prepares the
// driver binary's agent on a free loopback port, serving roots with the
// project IDs ids (for example 5000-5009); Start starts it.
func NewAgent(binary, dir string, roots []string, ids string) (*Agent, error) {
	pki, cert, key, ca, err := agenttest.AgentFiles(dir)
	if err != nil {
		return nil, err
	}
	addr, err := FreeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	a := &Agent{Addr: addr, PKI: pki, binary: binary}
	a.args = []string{"agent", "--listen", a.Addr, "--project-ids", ids, "--tls-cert", cert, "--tls-key", key, "--client-ca", ca}
	for _, r := range roots {
		a.args = append(a.args, "--root", r)
	}
	return a, nil
}

// Start (re)starts the agent in the server's mount namespace and waits up to 20 s until it listens.
func (a *Agent) Start() error {
	argv := ServerNS(append([]string{"unshare", "-m", "--propagation", "private", "--",
		"sh", "-c", `mount -o remount,bind,ro / && exec "$0" "$@"`, a.binary}, a.args...)...)
	a.cmd = exec.Command(argv[0], argv[1:]...)
	a.cmd.Stdout, a.cmd.Stderr = a.Output, a.Output
	if a.Output == nil {
		a.cmd.Stdout, a.cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := a.cmd.Start(); err != nil {
		a.cmd = nil
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", a.Addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the agent does not listen on %s: %v", a.Addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop stops the agent with SIGTERM and waits for it; a stopped agent's
// Stop does nothing.
func (a *Agent) Stop() {
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	_ = a.cmd.Wait()
	a.cmd = nil
}

// Secrets is what a StorageClass's provisioner and controller-expand
// secrets hold for the agent: a fresh client certificate its CA signed,
// under the keys the driver reads.
func (a *Agent) Secrets() (map[string]string, error) {
	pair, err := a.PKI.Client("nfs-csi-controller")
	if err != nil {
		return nil, err
	}
	return map[string]string{driver.SecretAgentCert: string(pair.CertPEM), driver.SecretAgentKey: string(pair.KeyPEM), driver.SecretAgentCA: string(a.PKI.CAPEM)}, nil
}
