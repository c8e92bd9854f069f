//go:build uml

package integration

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/example/nfs-csi/pkg/driver"
	"github.com/example/nfs-csi/test/umlbed"
)

// driverBinary is bin/nfs-csi next to the _output/ that holds this test
// binary (hack/uml-artifacts.sh builds both), or $NFS_CSI_BINARY.
func driverBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("NFS_CSI_BINARY"); p != "" {
		return p
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(filepath.Dir(exe), "..", "bin", "nfs-csi")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("the driver binary: %v (build it with make build, or set NFS_CSI_BINARY)", err)
	}
	return p
}

// freeLoopbackAddr returns a 127.0.0.1 address with a port nobody listens on.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	addr, err := umlbed.FreeLoopbackAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// startDriverBinary runs bin/nfs-csi in mode both with --metrics-address on
// loopback, as the chart runs it, and returns the env and the metrics URL.
func startDriverBinary(t *testing.T, v nfsVersion, nfsTimeout time.Duration) (*env, string) {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "it-metrics-")
	if err != nil {
		t.Fatal(err)
	}
	sock := "unix://" + filepath.Join(dir, "csi.sock")
	addr := freeLoopbackAddr(t)
	cmd := exec.Command(driverBinary(t), "--endpoint="+sock, "--nodeid="+nodeID, "--mode=both",
		"--workdir="+filepath.Join(dir, "work"), "--nfs-timeout="+nfsTimeout.String(), "--metrics-address="+addr, "--v=2")
	logf, err := os.Create(filepath.Join(dir, "driver.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, v: v, dir: dir, ctrl: csi.NewControllerClient(conn), node: csi.NewNodeClient(conn), ident: csi.NewIdentityClient(conn)}
	t.Cleanup(func() {
		conn.Close()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("the driver after SIGTERM: %v", err)
		}
		logf.Close()
		if t.Failed() {
			if log, err := os.ReadFile(logf.Name()); err == nil {
				t.Logf("driver log:\n%s", log)
			}
		}
		os.RemoveAll(dir)
	})
	// The driver is up when Probe answers.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.ident.Probe(ctx, &csi.ProbeRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("Probe of the driver binary: %v", err)
	}
	return e, "http://" + addr + driver.MetricsPath
}

// samples scrapes url over HTTP and returns each sample line's value by its
// series, e.g. `nfs_csi_share_mounts` or `nfs_csi_mount_failures_total{class="access_denied",kind="share"}`.
func samples(t *testing.T, url string) map[string]float64 {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape %s: %s: %s", url, resp.Status, body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("scrape %s: bad sample line %q", url, line)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// rpcSeries is the sample of csi_plugin_operations_seconds_count for method and code.
func rpcSeries(method string, code codes.Code) string {
	return fmt.Sprintf(`csi_plugin_operations_seconds_count{driver_name=%q,grpc_status_code=%q,method_name="/csi.v1.%s"}`, driver.DefaultDriverName, code.String(), method)
}

func failureSeries(kind, class string) string {
	return fmt.Sprintf(`nfs_csi_mount_failures_total{class=%q,kind=%q}`, class, kind)
}

// The driver binary started with --metrics-address serves metrics over HTTP
// that count exactly the CreateVolume, NodePublish, NodeUnpublish and
// DeleteVolume calls made against the real nfsd, the share mount they hold,
// the pod mounts, and (NFSv3, where mountd refuses an unexported path) the
// access-denied mount failure.
func TestMetricsCountRealCalls(t *testing.T) {
	for _, v := range versions(t) {
		t.Run(v.name, func(t *testing.T) {
			e, url := startDriverBinary(t, v, 30*time.Second)
			before := samples(t, url)
			if got := before["nfs_csi_share_mounts"]; got != 0 {
				t.Errorf("nfs_csi_share_mounts before any call = %v; want 0", got)
			}
			denied := v.vers == "3"

			a := e.create("pvc-metrics-a", nil)
			b := e.create("pvc-metrics-b", nil)
			e.create("pvc-metrics-a", nil) // a retry: idempotent, still OK
			mid := samples(t, url)
			if got := mid["nfs_csi_share_mounts"]; got != 1 {
				t.Errorf("nfs_csi_share_mounts after three CreateVolume calls on one share = %v; want 1", got)
			}

			e.publish(a, e.target("a1"), rwo, false)
			e.publish(b, e.target("b1"), rwo, false)
			e.publish(a, e.target("a1"), rwo, false) // a retry: still one publication
			if got := samples(t, url)["nfs_csi_node_publications"]; got != 2 {
				t.Errorf("nfs_csi_node_publications after publishing two targets (one twice) = %v; want 2", got)
			}
			e.unpublish(a.GetVolumeId(), e.target("a1"))
			if got := samples(t, url)["nfs_csi_node_publications"]; got != 1 {
				t.Errorf("nfs_csi_node_publications after one unpublish = %v; want 1", got)
			}
			e.unpublish(b.GetVolumeId(), e.target("b1"))

			if denied {
				nfsctl(t, "unexport")
				_, err := e.node.NodePublishVolume(e.ctx(), &csi.NodePublishVolumeRequest{
					VolumeId: a.GetVolumeId(), TargetPath: e.target("denied"), VolumeCapability: rwo, VolumeContext: a.GetVolumeContext(),
				})
				nfsctl(t, "export")
				wantCode(t, err, codes.PermissionDenied)
			}
			e.delete(a.GetVolumeId())
			e.delete(b.GetVolumeId())

			after := samples(t, url)
			want := map[string]float64{
				rpcSeries("Controller/CreateVolume", codes.OK):     3,
				rpcSeries("Controller/DeleteVolume", codes.OK):     2,
				rpcSeries("Node/NodePublishVolume", codes.OK):      3,
				rpcSeries("Node/NodeUnpublishVolume", codes.OK):    2,
				rpcSeries("Identity/Probe", codes.OK):              0, // startDriverBinary's Probe came before
				failureSeries("publish", "access_denied"):          0,
				failureSeries("share", "access_denied"):            0,
				failureSeries("publish", "timed_out"):              0,
				rpcSeries("Node/NodePublishVolume", codes.Unknown): 0,
			}
			if denied {
				want[rpcSeries("Node/NodePublishVolume", codes.PermissionDenied)] = 1
				want[failureSeries("publish", "access_denied")] = 1
			}
			for series, n := range want {
				if got := after[series] - before[series]; got != n {
					t.Errorf("%s moved by %v; want %v", series, got, n)
				}
			}
			// No call other than these was counted.
			var total, wantTotal float64
			for series, v := range after {
				if strings.HasPrefix(series, "csi_plugin_operations_seconds_count{") {
					total += v - before[series]
				}
			}
			for series, n := range want {
				if strings.HasPrefix(series, "csi_plugin_operations_seconds_count{") {
					wantTotal += n
				}
			}
			if total != wantTotal {
				t.Errorf("csi_plugin_operations_seconds_count moved by %v in all; want %v", total, wantTotal)
			}
			if got := after["nfs_csi_node_publications"]; got != 0 {
				t.Errorf("nfs_csi_node_publications at the end = %v; want 0", got)
			}
			if got := after["nfs_csi_hung_operations_total{method_name=\"/csi.v1.Controller/CreateVolume\"}"]; got != 0 {
				t.Errorf("hung CreateVolume operations = %v; want 0", got)
			}
		})
	}
}

// With nfsd stopped, a CreateVolume whose mkdir hangs on the hard-mounted
// share returns DeadlineExceeded after --nfs-timeout while the mkdir goes on,
// and a NodeGetVolumeStats returns Unavailable while its statfs stays
// blocked; a scrape still answers and shows one hung operation of each
// method until the server is back and the calls return.
func TestMetricsHungOperationWhileServerDown(t *testing.T) {
	v := versions(t)[1]
	e, url := startDriverBinary(t, v, 3*time.Second)
	hung := `nfs_csi_hung_operations{method_name="/csi.v1.Controller/CreateVolume"}`
	hungTotal := `nfs_csi_hung_operations_total{method_name="/csi.v1.Controller/CreateVolume"}`
	statsHung := `nfs_csi_hung_operations{method_name="/csi.v1.Node/NodeGetVolumeStats"}`
	first := e.create("pvc-metrics-up", nil) // mounts the share while nfsd runs
	target := e.target("up")
	e.publish(first, target, rwo, false)

	restart := stopServer(t)
	_, err := e.node.NodeGetVolumeStats(e.ctx(), &csi.NodeGetVolumeStatsRequest{VolumeId: first.GetVolumeId(), VolumePath: target})
	wantCode(t, err, codes.Unavailable)
	_, err = e.ctrl.CreateVolume(e.ctx(), &csi.CreateVolumeRequest{
		Name: "pvc-metrics-hung", Parameters: e.params(nil), VolumeCapabilities: []*csi.VolumeCapability{rwo},
	})
	wantCode(t, err, codes.DeadlineExceeded)
	// The scrape answers although every call on the share blocks now.
	down := samples(t, url)
	if got := down[hung]; got != 1 {
		t.Errorf("%s with nfsd stopped = %v; want 1", hung, got)
	}
	if got := down[statsHung]; got != 1 {
		t.Errorf("%s with nfsd stopped = %v; want 1 (its statfs is blocked)", statsHung, got)
	}
	if got := down[hungTotal]; got != 1 {
		t.Errorf("%s with nfsd stopped = %v; want 1", hungTotal, got)
	}
	if got := down[rpcSeries("Controller/CreateVolume", codes.DeadlineExceeded)]; got != 1 {
		t.Errorf("CreateVolume DeadlineExceeded counted %v times; want 1", got)
	}

	restart()
	deadline := time.Now().Add(4 * time.Minute)
	for m := samples(t, url); m[hung] != 0 || m[statsHung] != 0; m = samples(t, url) {
		if time.Now().After(deadline) {
			t.Fatalf("%s or %s stayed above 0 for 4 minutes after nfsd was restarted", hung, statsHung)
		}
		time.Sleep(time.Second)
	}
	if got := samples(t, url)[hungTotal]; got != 1 {
		t.Errorf("%s after the operation ended = %v; want 1", hungTotal, got)
	}
	// The retry finds what the hung call finished.
	second := e.create("pvc-metrics-hung", nil)
	e.delete(second.GetVolumeId())
	e.unpublish(first.GetVolumeId(), target)
	e.delete(first.GetVolumeId())
}

// volumeSamples are the samples of the per-volume gauges of volume id.
func volumeSamples(all map[string]float64, id string) map[string]float64 {
	out := map[string]float64{}
	for series, v := range all {
		if strings.HasPrefix(series, "nfs_csi_volume_") && strings.Contains(series, fmt.Sprintf("volume_id=%q", id)) {
			out[series] = v
		}
	}
	return out
}

func usedSeries(id string) string { return fmt.Sprintf("nfs_csi_volume_used_bytes{volume_id=%q}", id) }

func limitSeries(id, capacity string) string {
	return fmt.Sprintf("nfs_csi_volume_limit_bytes{capacity=%q,volume_id=%q}", capacity, id)
}

// wantVolumeSamples fails the test unless the per-volume samples of id are exactly want.
func wantVolumeSamples(t *testing.T, url, id, when string, want map[string]float64) {
	t.Helper()
	got := volumeSamples(samples(t, url), id)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: the samples of volume %s are %v; want %v", when, id, got, want)
	}
}

// On an XFS export with the quota agent, the driver binary serves each
// published volume's used and limit bytes at the figures its last
// NodeGetVolumeStats returned: the project quota's for an enforced volume
// (its limit follows an expansion at the next stats call, not at a
// scrape), the walk's and the size asked for for a recorded one. Each
// volume's series go when it is unpublished.
func TestMetricsVolumeBytes(t *testing.T) {
	q, a, _, _ := quotaBed(t, "xfs")
	e, url := startDriverBinary(t, nfsVersion{"nfs4.2", "4.2", q.v4Share}, 30*time.Second)
	secrets := agentSecrets(t, a)
	enforced := e.createSized("pvc-metrics-enforced", 32*mib,
		e.params(map[string]string{driver.ParamCapacity: driver.CapacityEnforced, driver.ParamQuotaAgent: a.addr, "mountPermissions": "0777"}), secrets)
	recorded := e.createSized("pvc-metrics-recorded", 16*mib, e.params(map[string]string{"mountPermissions": "0777"}), secrets)
	eid, rid := enforced.GetVolumeId(), recorded.GetVolumeId()
	et, rt := e.target("enforced"), e.target("recorded")
	e.publish(enforced, et, rwo, false)
	e.publish(recorded, rt, rwo, false)
	for target, size := range map[string]int{et: 8, rt: 2} {
		openToNobody(t, e, target)
		if out, err := writeAsNobody(filepath.Join(target, "data"), size); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	wantVolumeSamples(t, url, eid, "before any NodeGetVolumeStats", map[string]float64{})

	u, src := e.volumeStats(eid, et)
	// (XFS may still hold speculative preallocation beyond the 8 MiB.)
	if src != "quota" || u.GetTotal() != 32*mib || u.GetUsed() < 8*mib || u.GetUsed() >= 32*mib {
		t.Errorf("NodeGetVolumeStats of the enforced volume = %v from %q; want 8 MiB or a little more used of 32 MiB, from the quota", u, src)
	}
	wantVolumeSamples(t, url, eid, "after NodeGetVolumeStats", map[string]float64{
		usedSeries(eid): float64(u.GetUsed()), limitSeries(eid, driver.CapacityEnforced): 32 * mib})

	ru := e.walkedStats(rid, rt)
	if ru.GetUsed() < 2*mib || ru.GetUsed() >= 8*mib {
		t.Errorf("NodeGetVolumeStats of the recorded volume = %v; want its own 2 MiB or a little more used, not its neighbour's 8", ru)
	}
	wantVolumeSamples(t, url, rid, "after the walked NodeGetVolumeStats", map[string]float64{
		usedSeries(rid): float64(ru.GetUsed()), limitSeries(rid, driver.CapacityRecorded): 16 * mib})

	if _, err := e.ctrl.ControllerExpandVolume(e.ctx(), &csi.ControllerExpandVolumeRequest{
		VolumeId: eid, CapacityRange: &csi.CapacityRange{RequiredBytes: 64 * mib}, Secrets: secrets, VolumeCapability: rwo}); err != nil {
		t.Fatal(err)
	}
	// A scrape stats nothing: the limit moves with the next stats call.
	wantVolumeSamples(t, url, eid, "after the expansion, before NodeGetVolumeStats", map[string]float64{
		usedSeries(eid): float64(u.GetUsed()), limitSeries(eid, driver.CapacityEnforced): 32 * mib})
	if u, _ = e.volumeStats(eid, et); u.GetTotal() != 64*mib {
		t.Errorf("NodeGetVolumeStats after the expansion = %v; want a total of 64 MiB", u)
	}
	wantVolumeSamples(t, url, eid, "after the expansion and NodeGetVolumeStats", map[string]float64{
		usedSeries(eid): float64(u.GetUsed()), limitSeries(eid, driver.CapacityEnforced): 64 * mib})

	e.unpublish(eid, et)
	wantVolumeSamples(t, url, eid, "after its unpublish", map[string]float64{})
	wantVolumeSamples(t, url, rid, "after the other volume's unpublish", map[string]float64{
		usedSeries(rid): float64(ru.GetUsed()), limitSeries(rid, driver.CapacityRecorded): 16 * mib})
	e.unpublish(rid, rt)
	wantVolumeSamples(t, url, rid, "after its unpublish", map[string]float64{})
	e.deleteRetried(eid, secrets)
	e.deleteRetried(rid, secrets)
}
