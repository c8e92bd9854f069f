//go:build uml

package integration

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/example/nfs-csi/pkg/agent"
	"github.com/example/nfs-csi/pkg/agent/agenttest"
)

// quotaExport is a file system with project quotas on a loop device,
// mounted with prjquota at /run/export/<name> and exported on its own, so
// that NFSv3 reaches it as /run/export/<name> and NFSv4 as /<name> below
// the pseudo-root.
//
// The tests run in a mount namespace of their own (test/uml/init.sh), and
// a mount made there is invisible to rpc.mountd and nfsd, which resolve
// export paths in the guest's first namespace. So the file system is
// mounted there (serverNS), the agent runs there (in a child namespace
// with / read-only, like the tests), and the tests reach its files through
// /proc/1/root.
type quotaExport struct {
	kind    string // xfs or ext4
	path    string // the path on the server, as exports and the agent see it
	dir     string // the same directory as this test reaches it
	v3Share string
	v4Share string
}

// serverNS is the command line that runs args in the NFS server's mount
// namespace.
func serverNS(args ...string) []string {
	return append([]string{"nsenter", "--mount=/proc/1/ns/mnt", "--"}, args...)
}

func run(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := command(argv).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func command(argv []string) *exec.Cmd { return exec.Command(argv[0], argv[1:]...) }

var fsids = map[string]int{"xfs": 71, "ext4": 72}

func newQuotaExport(t *testing.T, kind string) *quotaExport {
	t.Helper()
	run(t, "modprobe", "loop")
	name := "q" + kind
	img := filepath.Join("/tmp", name+".img")
	size := "320M" // mkfs.xfs refuses file systems under 300 MB
	if kind == "ext4" {
		size = "160M"
	}
	run(t, "truncate", "-s", size, img)
	dev := run(t, "losetup", "-f", "--show", img)
	if kind == "xfs" {
		run(t, "mkfs.xfs", "-q", "-f", dev)
	} else {
		run(t, "mkfs.ext4", "-q", "-F", "-O", "quota,project", dev)
	}
	path := filepath.Join(exportDir(), name)
	q := &quotaExport{kind: kind, path: path, dir: "/proc/1/root" + path, v3Share: path, v4Share: "/" + name}
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, serverNS("mount", "-t", kind, "-o", "prjquota", dev, path)...)
	client := os.Getenv("NFS_SERVER") + ":" + path
	run(t, "exportfs", "-o", fmt.Sprintf("rw,insecure,no_root_squash,no_subtree_check,fsid=%d", fsids[kind]), client)
	t.Cleanup(func() {
		_ = exec.Command("exportfs", "-u", client).Run()
		_ = exec.Command("exportfs", "-f").Run()
		// nfsd lets go of the file system's files a moment after the
		// export is withdrawn (NFSv4 state until the client's unmount ends).
		for i := 0; ; i++ {
			out, err := command(serverNS("umount", path)).CombinedOutput()
			if err == nil {
				break
			}
			if i == 10 {
				t.Logf("unmount %s: %v\n%s; detaching it", path, err, out)
				_ = command(serverNS("umount", "-l", path)).Run()
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		_ = exec.Command("losetup", "-d", dev).Run()
		_ = os.Remove(path)
		_ = os.Remove(img)
	})
	return q
}

// roots are the agent's --root flags for both ways of naming the export.
func (q *quotaExport) roots() []string {
	return []string{q.v3Share, q.v4Share + "=" + q.path}
}

// volume makes a directory with the record CreateVolume would have written
// (the controller's part), world-writable so that an unprivileged writer
// meets the quota (ext4 does not limit root).
func (q *quotaExport) volume(t *testing.T, subDir string) agent.Request {
	t.Helper()
	id := "vol-" + subDir
	q.record(t, subDir, id)
	p := filepath.Join(q.dir, subDir)
	if err := os.MkdirAll(p, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o777); err != nil {
		t.Fatal(err)
	}
	return agent.Request{Share: q.v3Share, SubDir: subDir, VolumeID: id}
}

func (q *quotaExport) record(t *testing.T, subDir, id string) {
	t.Helper()
	if err := agenttest.CreateRecord(q.dir, subDir, id); err != nil {
		t.Fatal(err)
	}
}

// runningAgent is bin/nfs-csi agent on loopback, as the unit file runs it.
type runningAgent struct {
	addr string
	pki  *agenttest.PKI
	cmd  *exec.Cmd
	args []string
}

func startAgent(t *testing.T, roots []string, ids string) *runningAgent {
	t.Helper()
	pki, cert, key, ca, err := agenttest.AgentFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := &runningAgent{addr: freeLoopbackAddr(t), pki: pki}
	a.args = []string{"agent", "--listen", a.addr, "--project-ids", ids, "--tls-cert", cert, "--tls-key", key, "--client-ca", ca}
	for _, r := range roots {
		a.args = append(a.args, "--root", r)
	}
	a.start(t)
	t.Cleanup(func() { a.stop(t) })
	return a
}

func (a *runningAgent) start(t *testing.T) {
	t.Helper()
	argv := serverNS(append([]string{"unshare", "-m", "--propagation", "private", "--",
		"sh", "-c", `mount -o remount,bind,ro / && exec "$0" "$@"`, driverBinary(t)}, a.args...)...)
	a.cmd = command(argv)
	a.cmd.Stdout, a.cmd.Stderr = os.Stderr, os.Stderr
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", a.addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent does not listen on %s: %v", a.addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (a *runningAgent) stop(t *testing.T) {
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	_ = a.cmd.Wait()
	a.cmd = nil
}

// client is a controller's client of the agent with a certificate of signer.
func (a *runningAgent) client(t *testing.T, signer *agenttest.PKI) *agent.Client {
	t.Helper()
	pair, err := signer.Client("nfs-csi-controller")
	if err != nil {
		t.Fatal(err)
	}
	c, err := agent.NewClient(a.addr, "", pair.CertPEM, pair.KeyPEM, a.pki.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func agentCode(err error) agent.Code {
	var e *agent.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func quotaCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// quotaBed is a quota export of kind with the agent serving it (project
// IDs 5000-5009) and a client with a certificate of the agent's CA.
func quotaBed(t *testing.T, kind string) (*quotaExport, *runningAgent, *agent.Client, context.Context) {
	t.Helper()
	q := newQuotaExport(t, kind)
	a := startAgent(t, q.roots(), "5000-5009")
	return q, a, a.client(t, a.pki), quotaCtx(t)
}

// nfsMount mounts src at a new directory and returns it.
func nfsMount(t *testing.T, vers, src string) string {
	t.Helper()
	target, err := os.MkdirTemp("/tmp", "qm-")
	if err != nil {
		t.Fatal(err)
	}
	run(t, "mount", "-t", "nfs", "-o", "vers="+vers+",nolock,actimeo=0", src, target)
	t.Cleanup(func() {
		if err := unix.Unmount(target, 0); err != nil {
			_ = unix.Unmount(target, unix.MNT_DETACH)
		}
		_ = os.Remove(target)
	})
	return target
}

func statfsTotal(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Blocks) * st.Bsize
}

// writeAsNobody writes mib MiB of zeros to path as an unprivileged user
// and fsyncs it (over NFS a quota error shows at fsync or close); it
// returns dd's error output when it failed.
func writeAsNobody(path string, mib int) (string, error) {
	out, err := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"dd", "if=/dev/zero", "of="+path, "bs=1M", fmt.Sprintf("count=%d", mib), "conv=fsync").CombinedOutput()
	return string(out), err
}
