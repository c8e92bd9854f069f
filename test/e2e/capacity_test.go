//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/example/nfs-csi/pkg/agent"
	"github.com/example/nfs-csi/pkg/agent/agenttest"
	"github.com/example/nfs-csi/pkg/nfs"
	"github.com/example/nfs-csi/test/e2e/framework"
)

// The enforced capacity of test/e2e/values.yaml: class nfs-enforced on the
// XFS export /run/export/qxfs, its agent at 127.0.0.1:9820 and the Secret
// with the agent's client certificate that the class names.
const (
	enforcedClass   = "nfs-enforced"
	agentAddress    = "127.0.0.1:9820"
	agentSecret     = "nfs-csi-agent-client"
	agentProjectIDs = "3000000-3000099"
	quotaFSID       = 81
	mib             = int64(1 << 20)
)

var (
	quotaOnce  sync.Once
	quotaSetup struct {
		export *framework.QuotaExport
		agent  *framework.QuotaAgent
		err    error
	}
)

// quotaBed is the NFS server's side of enforced capacity, made once for
// the capacity scenarios, as an admin sets it up (docs/capacity.md): the
// XFS export with prjquota, the agent started from its unit file, and the
// controller's client certificate in the Secret the StorageClass names.
func quotaBed(t *testing.T) (*framework.QuotaExport, *framework.QuotaAgent) {
	t.Helper()
	quotaOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		s := &quotaSetup
		path := filepath.Join(exportDir, "qxfs")
		if s.export, s.err = framework.NewQuotaExport(filepath.Join(cfg.Dir, "quota"), path, quotaFSID); s.err != nil {
			return
		}
		if s.agent, s.err = framework.NewQuotaAgent(ctx, os.Getenv("E2E_AGENT_UNIT"), cfg.Driver,
			filepath.Join(cfg.Dir, "quota", "etc-nfs-csi"), cfg.LogDir, agentAddress, agentProjectIDs, path); s.err != nil {
			return
		}
		s.err = bed.CreateAgentSecret(ctx, framework.ChartNamespace, agentSecret, s.agent)
	})
	if quotaSetup.err != nil {
		t.Fatalf("the enforced-capacity bed: %v", quotaSetup.err)
	}
	return quotaSetup.export, quotaSetup.agent
}

// capacityContext is longer than testContext: a scenario writes hundreds
// of MiB through NFS in UML and waits for csi-resizer and for the
// provisioner's retries.
func capacityContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// sizedClaim is an RWO claim of size in class.
func sizedClaim(ns, name, class, size string) *corev1.PersistentVolumeClaim {
	pvc := claim(ns, name, class, corev1.ReadWriteOnce)
	pvc.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse(size)
	return pvc
}

// writeMiB writes mib MiB into path (created or truncated) in 4 MiB steps,
// each followed by fsync, as an application that checks its writes does:
// over NFS a quota error shows at fsync (NFSv3) or close, not at write. It
// returns how many MiB were written and synced before the first error.
func writeMiB(path string, mib int) (int, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	done := 0
	for done < mib {
		step := min(4, mib-done)
		for range step {
			if _, err := f.Write(chunk); err != nil {
				f.Close()
				return done, err
			}
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return done, err
		}
		done += step
	}
	return done, f.Close()
}

// mustWriteMiB is writeMiB that must succeed.
func mustWriteMiB(t *testing.T, path string, mib int) {
	t.Helper()
	if n, err := writeMiB(path, mib); err != nil {
		t.Fatalf("writing %d MiB to %s: %v after %d MiB", mib, path, err, n)
	}
}

// statfs is what df shows for path: size and used bytes.
func statfs(t *testing.T, path string) (size, used int64) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		t.Fatalf("statfs %s: %v", path, err)
	}
	return int64(st.Blocks) * st.Bsize, int64(st.Blocks-st.Bfree) * st.Bsize
}

// quotaTree lists every path under the quota export but those below skip
// (a volume the test writes to), with type, size and project ID, so two
// snapshots compare equal only when nothing else changed.
func quotaTree(t *testing.T, q *framework.QuotaExport, skip string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(q.Dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(q.Dir, p)
		if skip != "" && rel == skip {
			return filepath.SkipDir
		}
		line := rel + " " + fi.Mode().String() + " " + strconv.FormatInt(fi.Size(), 10)
		if fi.IsDir() {
			id, inherit, err := agent.ProjectOf(p)
			line += fmt.Sprintf(" project %d inherit %v %v", id, inherit, err)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", q.Dir, err)
	}
	sort.Strings(out)
	return out
}

// waitUsed waits until used() is within [lo, hi] bytes and returns the
// last figure: XFS counts its speculative preallocation beyond a file's end
// until the file is released (nfsd closes its cached files a few seconds
// after the last write), so a usage read right after a write can be high.
func waitUsed(used func() int64, lo, hi int64) int64 {
	deadline := time.Now().Add(time.Minute)
	for {
		u := used()
		if u >= lo && u <= hi || time.Now().After(deadline) {
			return u
		}
		time.Sleep(time.Second)
	}
}

func dfUsed(t *testing.T, path string) func() int64 {
	return func() int64 { _, u := statfs(t, path); return u }
}

func sameTree(a, b []string) bool { return strings.Join(a, "\n") == strings.Join(b, "\n") }

// projectOf is the project ID of a volume's directory on the server.
func projectOf(t *testing.T, q *framework.QuotaExport, subDir string) uint32 {
	t.Helper()
	id, inherit, err := agent.ProjectOf(filepath.Join(q.Dir, subDir))
	if err != nil || id == 0 || !inherit {
		t.Fatalf("the enforced volume %s has project %d, inherit %v (%v): want an ID of the agent with the inherit flag", subDir, id, inherit, err)
	}
	return id
}

// deleteEnforced deletes a claim and waits for its PV, whose DeleteVolume
// csi-provisioner retries, to go; then nothing of the volume is left on the
// server: neither its directory nor its project ID's assignment and limit.
func deleteEnforced(t *testing.T, ctx context.Context, q *framework.QuotaExport, ns, name, pv string, id uint32) {
	t.Helper()
	deleteClaim(t, ctx, bed, ns, name)
	if err := bed.WaitPVGone(ctx, pv, deleteTimeout); err != nil {
		t.Fatal(err)
	}
	if isDir(filepath.Join(q.Dir, ns, name)) {
		t.Errorf("after the PV went, %s/%s is still on the export", ns, name)
	}
	if _, err := os.Lstat(filepath.Join(q.Dir, agent.ProjectDir, fmt.Sprintf("id-%d", id))); !os.IsNotExist(err) {
		t.Errorf("after the PV went, project ID %d is still assigned (%v)", id, err)
	}
	if qt, err := agent.QuotaOf(q.Dir, id); err != nil || qt.LimitBytes != 0 {
		t.Errorf("after the PV went, project %d has %+v (%v), want no limit", id, qt, err)
	}
}

// TestCapacityLimitAndExpansion is issue 11's scenarios 1 and 2. A 64 MiB
// claim in the enforcing class: df through the pod's mount shows 64 MiB;
// writing 100 MiB fails with "no space left on device" at about 64 MiB;
// the rest of the export is untouched and another volume on the same share
// keeps writing. Then the claim is edited to 128 MiB: csi-resizer expands
// it, the claim's status.capacity reads 128Mi, df shows it without a
// remount, and the write succeeds up to the new size.
func TestCapacityLimitAndExpansion(t *testing.T) {
	q, _ := quotaBed(t)
	ctx := capacityContext(t)
	ns := namespace(t, ctx, bed, "cap-limit")
	pv := provision(t, ctx, bed, sizedClaim(ns, "data", enforcedClass, "64Mi"))
	other := provision(t, ctx, bed, sizedClaim(ns, "other", enforcedClass, "32Mi"))
	if got := pv.Spec.Capacity[corev1.ResourceStorage]; got.Value() != 64*mib {
		t.Errorf("the PV's capacity is %s, want 64Mi", got.String())
	}
	subDir := ns + "/data"
	id := projectOf(t, q, subDir)
	otherID := projectOf(t, q, ns+"/other")
	if id == otherID {
		t.Fatalf("both volumes have project ID %d", id)
	}
	p := runPod(t, ctx, nodeA, ns, "app", "data", "other")
	mnt, otherMnt := p.Mounts["data"], p.Mounts["other"]

	if size, _ := statfs(t, mnt); size != 64*mib {
		t.Errorf("df in the pod's mount: %d bytes, want 64 MiB", size)
	}
	fsSize, fsUsedBefore := statfs(t, q.Dir)
	if fsSize < 250*mib {
		t.Fatalf("the whole export is %d bytes: the test needs its 320 MB", fsSize)
	}
	treeBefore := quotaTree(t, q, subDir)

	n, err := writeMiB(filepath.Join(mnt, "big"), 100)
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("writing 100 MiB into the 64 MiB volume: %v after %d MiB, want ENOSPC (no space left on device)", err, n)
	}
	if n < 48 || n > 64 {
		t.Errorf("the write stopped after %d MiB were synced, want about 64", n)
	}
	if used := waitUsed(dfUsed(t, mnt), 60*mib, 64*mib); used < 60*mib || used > 64*mib {
		t.Errorf("df in the pod's mount after the failed write: %d bytes used, want about 64 MiB", used)
	}
	t.Logf("the 100 MiB write stopped at %d MiB: %v", n, err)

	fsUsed := waitUsed(dfUsed(t, q.Dir), 0, fsUsedBefore+66*mib)
	if grown := fsUsed - fsUsedBefore; grown > 66*mib {
		t.Errorf("the export's file system grew by %d bytes, more than the volume's 64 MiB", grown)
	}
	if after := quotaTree(t, q, subDir); !sameTree(treeBefore, after) {
		t.Errorf("the write into %s changed the export outside it:\n%s\nto\n%s", subDir, strings.Join(treeBefore, "\n"), strings.Join(after, "\n"))
	}
	// The neighbour has its own limit, not what is left of the first's.
	mustWriteMiB(t, filepath.Join(otherMnt, "more"), 16)
	if used := waitUsed(dfUsed(t, otherMnt), 16*mib, 17*mib); used < 16*mib || used > 17*mib {
		t.Errorf("df of the other volume: %d bytes used, want its own 16 MiB", used)
	}

	// Scenario 2: the claim grows to 128Mi.
	patch := []byte(`{"spec":{"resources":{"requests":{"storage":"128Mi"}}}}`)
	pvcs := bed.Cluster.Client.CoreV1().PersistentVolumeClaims(ns)
	if _, err := pvcs.Patch(ctx, "data", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("edit the claim to 128Mi: %v", err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pvc, err := pvcs.Get(ctx, "data", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if c := pvc.Status.Capacity[corev1.ResourceStorage]; c.Value() == 128*mib {
			// Only the resize conditions matter: Kubernetes 1.37 also sets
			// Unused (False while a pod uses the claim).
			for _, c := range pvc.Status.Conditions {
				switch c.Type {
				case corev1.PersistentVolumeClaimResizing, corev1.PersistentVolumeClaimFileSystemResizePending,
					corev1.PersistentVolumeClaimControllerResizeError, corev1.PersistentVolumeClaimNodeResizeError:
					t.Errorf("the expanded claim has condition %+v, want no resize condition (no node expansion)", c)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the claim's status.capacity is %v after 2 minutes, want 128Mi; conditions %+v; events: %s",
				pvc.Status.Capacity, pvc.Status.Conditions, bed.EventSummary(ctx, ns, "PersistentVolumeClaim", "data"))
		}
		time.Sleep(time.Second)
	}
	if pvObj, err := bed.Cluster.Client.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else if c := pvObj.Spec.Capacity[corev1.ResourceStorage]; c.Value() != 128*mib {
		t.Errorf("the PV's capacity after the expansion is %s, want 128Mi", c.String())
	}
	if size, _ := statfs(t, mnt); size != 128*mib {
		t.Errorf("df in the pod's mount after the expansion: %d bytes, want 128 MiB without a remount", size)
	}
	if qt, err := agent.QuotaOf(q.Dir, id); err != nil || qt.LimitBytes != 128*mib {
		t.Errorf("project %d after the expansion: %+v (%v), want a 128 MiB limit", id, qt, err)
	}
	mustWriteMiB(t, filepath.Join(mnt, "big"), 100)
	if n, err := writeMiB(filepath.Join(mnt, "past"), 40); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("writing 40 MiB more past the 128 MiB: %v after %d MiB, want ENOSPC", err, n)
	}

	stopPod(t, ctx, nodeA, p)
	deleteEnforced(t, ctx, q, ns, "data", pv.Name, id)
	deleteEnforced(t, ctx, q, ns, "other", other.Name, otherID)
}

// TestCapacityVolumeStats is issue 11's scenario 3: NodeGetVolumeStats,
// called as the kubelet does, reports the volume's own usage for an
// enforced volume (from its quota) and for an unenforced one (from the
// node plugin's background walk), each next to a neighbour on the same
// share that holds ten times more data.
func TestCapacityVolumeStats(t *testing.T) {
	q, _ := quotaBed(t)
	ctx := capacityContext(t)
	ns := namespace(t, ctx, bed, "cap-stats")
	var pvs []*corev1.PersistentVolume
	for _, c := range []struct{ name, class string }{
		{"enforced", enforcedClass}, {"enforced-big", enforcedClass},
		{"plain", "nfs-delete"}, {"plain-big", "nfs-delete"},
	} {
		pvs = append(pvs, provision(t, ctx, bed, sizedClaim(ns, c.name, c.class, "64Mi")))
	}
	p := runPod(t, ctx, nodeA, ns, "app", "enforced", "enforced-big", "plain", "plain-big")
	want := map[string]int{"enforced": 2, "enforced-big": 20, "plain": 2, "plain-big": 20}
	for vol, n := range want {
		mustWriteMiB(t, filepath.Join(p.Mounts[vol], "data"), n)
	}

	for _, vol := range []string{"enforced", "enforced-big", "plain", "plain-big"} {
		wantSource := "quota"
		if strings.HasPrefix(vol, "plain") {
			wantSource = "walk"
		}
		// The walk runs in the background: until it has finished, the
		// plugin answers at once from the share's statfs, and says so.
		// (And XFS's preallocation, see waitUsed.)
		var st framework.VolumeStats
		deadline := time.Now().Add(2 * time.Minute)
		for {
			var err error
			if st, err = nodeA.VolumeStats(ctx, p, vol); err != nil {
				t.Fatal(err)
			}
			u := st.Bytes.GetUsed()
			settled := st.Source == wantSource && u >= int64(want[vol])*mib && u <= int64(want[vol]+1)*mib
			if settled || st.Source != "share" && st.Source != wantSource || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Second)
		}
		used, wantUsed := st.Bytes.GetUsed(), int64(want[vol])*mib
		t.Logf("%s: %s source %q, inodes %v", vol, st.Bytes, st.Source, st.Inodes)
		if st.Source != wantSource {
			t.Errorf("%s: usage source %q, want %q", vol, st.Source, wantSource)
		}
		if used < wantUsed || used > wantUsed+mib {
			t.Errorf("%s: %d bytes used, want its own %d MiB, not its neighbour's", vol, used, want[vol])
		}
		if st.Bytes.GetTotal() != 64*mib {
			t.Errorf("%s: total %d bytes, want the claim's 64 MiB", vol, st.Bytes.GetTotal())
		}
		if st.Bytes.GetAvailable() > 64*mib-wantUsed {
			t.Errorf("%s: %d bytes available, want at most %d", vol, st.Bytes.GetAvailable(), 64*mib-wantUsed)
		}
	}

	stopPod(t, ctx, nodeA, p)
	for i, vol := range []string{"enforced", "enforced-big"} {
		deleteEnforced(t, ctx, q, ns, vol, pvs[i].Name, projectOf(t, q, ns+"/"+vol))
	}
	for i, vol := range []string{"plain", "plain-big"} {
		deleteClaim(t, ctx, bed, ns, vol)
		if err := bed.WaitPVGone(ctx, pvs[2+i].Name, deleteTimeout); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCapacityAgentRefuses is issue 11's scenario 4, against the bed's
// running agent over the network: a client without a valid certificate
// (none, or one of another CA); a share outside the agent's roots; a path
// through a symlink; a directory without a record; a directory whose
// project ID an admin set outside the agent's range. Each is refused with
// its code, and nothing changes on the server: the tree, the project IDs
// and the limits.
func TestCapacityAgentRefuses(t *testing.T) {
	q, a := quotaBed(t)
	ctx := capacityContext(t)
	ns := namespace(t, ctx, bed, "cap-refuse")
	pv := provision(t, ctx, bed, sizedClaim(ns, "data", enforcedClass, "16Mi"))
	subDir := ns + "/data"
	id := projectOf(t, q, subDir)
	handle := pv.Spec.CSI.VolumeHandle

	// What an admin or another program left on the export.
	escape, noRecord, admin := ns+"-escape", ns+"-norecord", ns+"-admin"
	if err := os.Symlink(subDir, filepath.Join(q.Dir, escape)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(q.Dir, noRecord), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(q.Dir, admin), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{escape, admin} {
		if err := agenttest.CreateRecord(q.Dir, d, "vol-"+d); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = agenttest.WithRecords(q.Dir, func(recFd int) error {
			for _, d := range []string{escape, admin} {
				_ = nfs.DeleteRecord(recFd, d)
			}
			return nil
		})
		for _, d := range []string{escape, noRecord, admin} {
			_ = os.Remove(filepath.Join(q.Dir, d))
		}
	})
	if out, err := exec.Command("chattr", "-p", "42", "+P", filepath.Join(q.Dir, admin)).CombinedOutput(); err != nil {
		t.Fatalf("chattr: %v\n%s", err, out)
	}

	client := func(pair agenttest.Pair) *agent.Client {
		c, err := agent.NewClient(a.Address, "", pair.CertPEM, pair.KeyPEM, a.PKI.CAPEM)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	good := client(a.ClientPair)
	otherCA, err := agenttest.NewPKI("another-ca")
	if err != nil {
		t.Fatal(err)
	}
	otherPair, err := otherCA.Client("nfs-csi-controller")
	if err != nil {
		t.Fatal(err)
	}
	// The agent works for the right client: the bed is not refusing everything.
	if st, err := good.Get(ctx, agent.Request{Share: q.Path, SubDir: subDir, VolumeID: handle}); err != nil || st.ProjectID != id || st.LimitBytes != 16*mib {
		t.Fatalf("Get of the volume with the controller's certificate = %+v, %v; want project %d with 16 MiB", st, err, id)
	}

	snapshot := func() string {
		var b strings.Builder
		for _, l := range quotaTree(t, q, "") {
			b.WriteString(l + "\n")
		}
		for _, pid := range []uint32{42, id} {
			qt, err := agent.QuotaOf(q.Dir, pid)
			fmt.Fprintf(&b, "project %d limit %d %v\n", pid, qt.LimitBytes, err)
		}
		return b.String()
	}
	for _, tc := range []struct {
		name string
		c    *agent.Client
		req  agent.Request
		want agent.Code // "" for a refused handshake
	}{
		{"certificate of another CA", client(otherPair), agent.Request{Share: q.Path, SubDir: subDir, VolumeID: handle}, ""},
		{"share not a root", good, agent.Request{Share: exportDir, SubDir: "qxfs/" + subDir, VolumeID: handle}, agent.CodePermissionDenied},
		{"through a symlink", good, agent.Request{Share: q.Path, SubDir: escape, VolumeID: "vol-" + escape}, agent.CodePermissionDenied},
		{"no record", good, agent.Request{Share: q.Path, SubDir: noRecord, VolumeID: "vol-" + noRecord}, agent.CodeFailedPrecondition},
		{"project ID outside the range", good, agent.Request{Share: q.Path, SubDir: admin, VolumeID: "vol-" + admin}, agent.CodeFailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot()
			req := tc.req
			req.CapacityBytes = 1 * mib
			_, err := tc.c.Set(ctx, req)
			if tc.want == "" && !agent.IsUnreachable(err) || tc.want != "" && agentCode(err) != tc.want {
				t.Errorf("Set = %v, want %q", err, tc.want)
			}
			req.CapacityBytes = 0
			if err := tc.c.Clear(ctx, req); tc.want == "" && !agent.IsUnreachable(err) || tc.want != "" && agentCode(err) != tc.want {
				t.Errorf("Clear = %v, want %q", err, tc.want)
			}
			if after := snapshot(); after != before {
				t.Errorf("the refusal changed the server:\n%s\nto\n%s", before, after)
			}
		})
	}
	t.Run("no certificate", func(t *testing.T) {
		before := snapshot()
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(a.PKI.CAPEM)
		hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}
		body := fmt.Sprintf(`{"share":%q,"subDir":%q,"volumeID":%q,"capacityBytes":1048576}`, q.Path, subDir, handle)
		resp, err := hc.Post("https://"+a.Address+agent.PathSet, "application/json", strings.NewReader(body))
		if err == nil {
			resp.Body.Close()
			t.Errorf("a client without a certificate got an answer: %s", resp.Status)
		}
		if after := snapshot(); after != before {
			t.Errorf("the refusal changed the server:\n%s\nto\n%s", before, after)
		}
	})

	deleteEnforced(t, ctx, q, ns, "data", pv.Name, id)
}

func agentCode(err error) agent.Code {
	var e *agent.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// TestCapacityAgentDown is issue 11's scenario 5: with the agent stopped,
// CreateVolume in the enforcing class fails with a retryable error naming
// the agent, the claim stays Pending and nothing is created on the export;
// once the agent is back, csi-provisioner's retry provisions the claim,
// with its limit.
func TestCapacityAgentDown(t *testing.T) {
	q, a := quotaBed(t)
	ctx := capacityContext(t)
	ns := namespace(t, ctx, bed, "cap-down")
	a.Stop()
	restarted := false
	t.Cleanup(func() {
		if !restarted {
			if err := a.Start(context.Background()); err != nil {
				t.Errorf("restart the agent: %v", err)
			}
		}
	})
	before := quotaTree(t, q, "")
	createClaim(t, ctx, bed, sizedClaim(ns, "data", enforcedClass, "16Mi"))
	ev, err := bed.WaitEvent(ctx, ns, "PersistentVolumeClaim", "data", "ProvisioningFailed", bindTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ev.Message, "Unavailable") || !strings.Contains(ev.Message, agentAddress) {
		t.Errorf("ProvisioningFailed says %q, want Unavailable naming the agent %s", ev.Message, agentAddress)
	}
	if pvc, err := bed.Cluster.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else if pvc.Status.Phase != corev1.ClaimPending {
		t.Errorf("the claim is %s with the agent down, want Pending", pvc.Status.Phase)
	}
	if after := quotaTree(t, q, ""); !sameTree(before, after) {
		t.Errorf("CreateVolume with the agent down changed the export:\n%s\nto\n%s", strings.Join(before, "\n"), strings.Join(after, "\n"))
	}

	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	restarted = true
	// csi-provisioner retries with an exponential backoff that has grown
	// while the agent was down.
	pv, err := bed.WaitClaimBound(ctx, ns, "data", 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	id := projectOf(t, q, ns+"/data")
	if qt, err := agent.QuotaOf(q.Dir, id); err != nil || qt.LimitBytes != 16*mib {
		t.Errorf("project %d of the volume made after the agent came back: %+v (%v), want its 16 MiB", id, qt, err)
	}
	deleteEnforced(t, ctx, q, ns, "data", pv.Name, id)
}
