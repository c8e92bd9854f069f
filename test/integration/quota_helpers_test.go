//go:build uml

package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/example/nfs-csi/pkg/agent"
	"github.com/example/nfs-csi/pkg/agent/agenttest"
	"github.com/example/nfs-csi/test/umlbed"
)

// quotaExport is a file system with project quotas exported on its own
// (umlbed.Export: mounted and exported in the server's mount namespace,
// reached here through /proc/1/root).
type quotaExport struct {
	kind    string // xfs or ext4
	path    string // the path on the server, as exports and the agent see it
	dir     string // the same directory as this test reaches it
	v3Share string
	v4Share string
	x       *umlbed.Export
}

func run(t *testing.T, argv ...string) string {
	t.Helper()
	out, err := umlbed.Run(argv...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var fsids = map[string]int{"xfs": 71, "ext4": 72}

func newQuotaExport(t *testing.T, kind string) *quotaExport {
	t.Helper()
	size := "320M" // mkfs.xfs refuses file systems under 300 MB
	if kind == "ext4" {
		size = "160M"
	}
	x, err := umlbed.NewExport(kind, "q"+kind, size, fsids[kind])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close(t.Logf) })
	return &quotaExport{kind: kind, path: x.Path, dir: x.Dir, v3Share: x.V3Share, v4Share: x.V4Share, x: x}
}

// roots are the agent's --root flags for both ways of naming the export.
func (q *quotaExport) roots() []string { return q.x.Roots() }

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

// runningAgent is bin/nfs-csi agent on loopback, as the unit file runs it
// (umlbed.Agent).
type runningAgent struct {
	addr string
	pki  *agenttest.PKI
	a    *umlbed.Agent
}

func startAgent(t *testing.T, roots []string, ids string) *runningAgent {
	t.Helper()
	a, err := umlbed.StartAgent(driverBinary(t), t.TempDir(), roots, ids)
	if a != nil {
		t.Cleanup(a.Stop)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &runningAgent{addr: a.Addr, pki: a.PKI, a: a}
}

func (a *runningAgent) start(t *testing.T) {
	t.Helper()
	if err := a.a.Start(); err != nil {
		t.Fatal(err)
	}
}

func (a *runningAgent) stop(*testing.T) { a.a.Stop() }

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
