// Command bench measures the driver against a real kernel NFS server, inside
// the UML guest of test/uml/run.sh (see hack/bench.sh). It compares every
// driver figure with the bare operation it wraps, measured in the same run,
// because absolute figures under UML move with the host's load.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/example/nfs-csi/pkg/driver"
	"github.com/example/nfs-csi/test/umlbed"
	"k8s.io/klog/v2"
)

type result struct {
	NFSVersion            string  `json:"nfsVersion"`
	CreateDeleteSeqPerSec float64 `json:"createDeleteSequentialPerSec"`
	CreateDeleteParPerSec float64 `json:"createDelete8ConcurrentPerSec"`
	BareMkdirRmdirPerSec  float64 `json:"bareMkdirRmdirPerSec"`
	SeqRatioToBare        float64 `json:"createDeleteSlowdownVsBare"`
	PublishPairP50Ms      float64 `json:"publishUnpublishP50Ms"`
	PublishPairP99Ms      float64 `json:"publishUnpublishP99Ms"`
	BareMountPairP50Ms    float64 `json:"bareMountUmountP50Ms"`
	PublishRatioToBare    float64 `json:"publishSlowdownVsBare"`
	StatsP50Ms            float64 `json:"nodeGetVolumeStatsP50Ms"`
	PeakRSSMiB            float64 `json:"driverPeakRSSMiB"`
	EmptyRPCMs            float64 `json:"emptyRPCRoundTripMs"`
	RawPingPongMs         float64 `json:"rawUnixSocketRoundTripMs"`
	InProcessPerSec       float64 `json:"createDeleteInProcessPerSec"`
	InProcessRatioToBare  float64 `json:"createDeleteInProcessSlowdownVsBare"`
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "echo-server" {
		echoServer(os.Args[2])
		return
	}
	driverBin := flag.String("driver", "bin/nfs-csi", "driver binary")
	out := flag.String("out", "", "JSON output file")
	cycles := flag.Int("cycles", 200, "create+delete cycles per measurement")
	publish := flag.Bool("publish", true, "also measure publish/unpublish against bare mount/umount (slow)")
	snapshots := flag.Bool("snapshots", true, "also measure CreateSnapshot, restore and clone against cp -a and tar on the tmpfs export and on an XFS export (issue 10)")
	copyMiB := flag.Int("copy-mib", 200, "MiB in the snapshot rows' source volume (the export holds three copies at once)")
	copyFiles := flag.Int("copy-files", 2000, "files in the snapshot rows' source volume")
	capacity := flag.Bool("capacity", true, "also measure enforced capacity on an XFS export with the quota agent (issue 11)")
	statsFiles := flag.Int("stats-files", 100_000, "files in the volume whose NodeGetVolumeStats the capacity rows measure")
	flag.Parse()
	server, exportDir := os.Getenv("NFS_SERVER"), os.Getenv("NFS_EXPORT_DIR")
	if server == "" || exportDir == "" {
		fail("run inside test/uml/run.sh (NFS_SERVER, NFS_EXPORT_DIR)")
	}
	var rep report
	for _, v := range []struct{ vers, share string }{{"3", os.Getenv("NFS_SHARE_V3")}, {"4.1", os.Getenv("NFS_SHARE_V4")}} {
		rep.Versions = append(rep.Versions, run(*driverBin, server, v.vers, v.share, *cycles, *publish))
	}
	if *snapshots || *capacity {
		rep.Copies, rep.Capacity = issueRows(*driverBin, server, exportDir, *snapshots, *capacity, *copyFiles, *copyMiB, *cycles, *statsFiles)
	}
	printTable(rep.Versions)
	printCopyTable(os.Stdout, rep.Copies)
	printCapacityTable(os.Stdout, rep.Capacity)
	if *out != "" {
		data, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(*out, append(data, '\n'), 0o644); err != nil {
			fail(err.Error())
		}
	}
}

// report is what _output/bench.json holds.
type report struct {
	// Versions are the create+delete, publish and stats rows per NFS
	// version, on the harness's tmpfs export.
	Versions []result `json:"versions"`
	// Copies are the snapshot rows (issue 10), per export.
	Copies []copyResult `json:"snapshots,omitempty"`
	// Capacity is the enforced-capacity rows (issue 11).
	Capacity *capacityResult `json:"capacity,omitempty"`
}

// issueRows runs the snapshot rows on the harness's export and then, like
// the capacity rows, on an XFS export with prjquota that it makes inside
// the same guest (umlbed.NewExport), with its own driver process.
func issueRows(driverBin, server, exportDir string, snapshots, capacity bool, copyFiles, copyMiB, cycles, statsFiles int) ([]copyResult, *capacityResult) {
	work, err := os.MkdirTemp("/tmp", "bench-issues-")
	check(err, "tempdir")
	p := startDriver(driverBin, work)
	defer p.stop()
	var copies []copyResult
	if snapshots {
		fs := os.Getenv("NFS_EXPORT_FS")
		if fs == "" || fs == "tmpfs" {
			fs = "tmpfs"
			ensureTmpfsRoom(exportDir, 3*int64(copyMiB)<<20)
		}
		copies = append(copies, copyRows(p, copyExport{name: fs, server: server, share: os.Getenv("NFS_SHARE_V4"), local: exportDir}, work, copyFiles, copyMiB))
	}
	// The image is sparse in the guest's /tmp: what counts is the blocks
	// written, at most three copies of the snapshot rows' tree.
	size := fmt.Sprintf("%dM", max(2048, 4*copyMiB+1024))
	x, err := umlbed.NewExport("xfs", "qbench", size, 73)
	check(err, "the XFS export")
	defer x.Close(func(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...) })
	if snapshots {
		copies = append(copies, copyRows(p, copyExport{name: "xfs", server: server, share: x.V4Share, local: x.Dir}, work, copyFiles, copyMiB))
	}
	if !capacity {
		return copies, nil
	}
	a, err := umlbed.NewAgent(driverBin, work, x.Roots(), "5000-5999")
	check(err, "the quota agent")
	agentLog, err := os.Create(filepath.Join(work, "agent.log"))
	check(err, "agent log")
	defer agentLog.Close()
	a.Output = agentLog
	check(a.Start(), "start the quota agent")
	defer a.Stop()
	c := capacityRows(p, x, a, work, cycles, statsFiles)
	return copies, &c
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "bench:", msg)
	os.Exit(1)
}

func check(err error, what string) {
	if err != nil {
		fail(what + ": " + err.Error())
	}
}

func run(driverBin, server, vers, share string, cycles int, publish bool) result {
	r := result{NFSVersion: vers}
	work, err := os.MkdirTemp("/tmp", "bench-")
	check(err, "tempdir")
	p := startDriver(driverBin, work)
	defer p.stop()
	cmd, conn := p.cmd, p.conn
	ctrl, node := csi.NewControllerClient(conn), csi.NewNodeClient(conn)
	ctx := context.Background()
	params := map[string]string{"server": server, "share": share, "mountOptions": "vers=" + vers}
	create := func(name string) *csi.Volume {
		resp, err := ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: name, Parameters: params, VolumeCapabilities: []*csi.VolumeCapability{capability}})
		check(err, "CreateVolume")
		return resp.GetVolume()
	}
	del := func(id string) {
		_, err := ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: id})
		check(err, "DeleteVolume")
	}
	ident := csi.NewIdentityClient(conn)
	t0 := time.Now()
	for range 200 {
		_, err := ident.GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
		check(err, "GetPluginInfo")
	}
	r.EmptyRPCMs = ms(time.Since(t0) / 200)

	// Warm up: the first call mounts the share; steady state keeps it.
	del(create("bench-warmup").GetVolumeId())

	start := time.Now()
	for i := range cycles {
		del(create(fmt.Sprintf("bench-seq-%d", i)).GetVolumeId())
	}
	r.CreateDeleteSeqPerSec = float64(cycles) / time.Since(start).Seconds()

	start = time.Now()
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				del(create(fmt.Sprintf("bench-par-%d", i)).GetVolumeId())
			}
		}()
	}
	for i := range cycles {
		next <- i
	}
	close(next)
	wg.Wait()
	r.CreateDeleteParPerSec = float64(cycles) / time.Since(start).Seconds()

	// Bare mkdir+rmdir on a share mounted the same way the driver mounts it.
	bare := filepath.Join(work, "bare")
	check(os.MkdirAll(bare, 0o755), "mkdir")
	check(mountNFS(server+":"+share, bare, "vers="+vers+",nolock"), "bare mount")
	n := cycles * 4
	start = time.Now()
	for i := range n {
		p := filepath.Join(bare, "bare-"+strconv.Itoa(i))
		check(syscall.Mkdir(p, 0o777), "mkdir")
		check(syscall.Rmdir(p), "rmdir")
	}
	r.BareMkdirRmdirPerSec = float64(n) / time.Since(start).Seconds()
	check(exec.Command("umount", bare).Run(), "bare umount")
	r.SeqRatioToBare = r.BareMkdirRmdirPerSec / r.CreateDeleteSeqPerSec

	// The same CreateVolume+DeleteVolume code path called in this process,
	// without the gRPC transport: what the driver itself costs. Its log
	// lines would go to the UML console, which would measure the console.
	klog.SetOutput(io.Discard)
	klog.LogToStderr(false)
	d, err := driver.New(driver.Config{Mode: driver.ModeController, WorkDir: filepath.Join(work, "inproc")})
	check(err, "in-process driver")
	inproc := func(name string) {
		resp, err := d.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: name, Parameters: params, VolumeCapabilities: []*csi.VolumeCapability{capability}})
		check(err, "in-process CreateVolume")
		_, err = d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: resp.GetVolume().GetVolumeId()})
		check(err, "in-process DeleteVolume")
	}
	inproc("bench-inproc-warmup")
	start = time.Now()
	for i := range cycles {
		inproc(fmt.Sprintf("bench-inproc-%d", i))
	}
	r.InProcessPerSec = float64(cycles) / time.Since(start).Seconds()
	r.InProcessRatioToBare = r.BareMkdirRmdirPerSec / r.InProcessPerSec
	d.Close()
	r.RawPingPongMs = rawPingPong(work)

	if !publish {
		r.PeakRSSMiB = peakRSSMiB(cmd.Process.Pid)
		return r
	}

	// NodePublish+NodeUnpublish over 50 volumes, against bare mount+umount of
	// the same directories.
	var vols []*csi.Volume
	for i := range 50 {
		vols = append(vols, create(fmt.Sprintf("bench-pub-%d", i)))
	}
	var pub, bareMount []time.Duration
	for i, v := range vols {
		target := filepath.Join(work, "pods", strconv.Itoa(i))
		t0 := time.Now()
		_, err := node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: v.GetVolumeId(), TargetPath: target, VolumeCapability: capability, VolumeContext: v.GetVolumeContext()})
		check(err, "NodePublishVolume")
		_, err = node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: v.GetVolumeId(), TargetPath: target})
		check(err, "NodeUnpublishVolume")
		pub = append(pub, time.Since(t0))

		src := server + ":" + filepath.Join(share, v.GetVolumeContext()["subDir"])
		t0 = time.Now()
		check(os.MkdirAll(target, 0o750), "mkdir target")
		check(mountNFS(src, target, "vers="+vers), "bare mount")
		check(exec.Command("umount", target).Run(), "bare umount")
		check(os.Remove(target), "remove target")
		bareMount = append(bareMount, time.Since(t0))
	}
	r.PublishPairP50Ms, r.PublishPairP99Ms = ms(pct(pub, 50)), ms(pct(pub, 99))
	r.BareMountPairP50Ms = ms(pct(bareMount, 50))
	r.PublishRatioToBare = r.PublishPairP50Ms / r.BareMountPairP50Ms

	// NodeGetVolumeStats on one published volume.
	target := filepath.Join(work, "pods", "stats")
	_, err = node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: vols[0].GetVolumeId(), TargetPath: target, VolumeCapability: capability, VolumeContext: vols[0].GetVolumeContext()})
	check(err, "NodePublishVolume")
	var stats []time.Duration
	for range 200 {
		t0 := time.Now()
		_, err := node.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: vols[0].GetVolumeId(), VolumePath: target})
		check(err, "NodeGetVolumeStats")
		stats = append(stats, time.Since(t0))
	}
	r.StatsP50Ms = ms(pct(stats, 50))
	_, err = node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: vols[0].GetVolumeId(), TargetPath: target})
	check(err, "NodeUnpublishVolume")
	for _, v := range vols {
		del(v.GetVolumeId())
	}
	r.PeakRSSMiB = peakRSSMiB(cmd.Process.Pid)
	return r
}

// rawPingPong measures the floor any out-of-process driver pays under UML: a
// 10-byte round trip over a unix socket to another process.
func rawPingPong(work string) float64 {
	sock := filepath.Join(work, "echo.sock")
	cmd := exec.Command(os.Args[0], "echo-server", sock)
	check(cmd.Start(), "start echo server")
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var c net.Conn
	var err error
	for range 200 {
		if c, err = net.Dial("unix", sock); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	check(err, "dial echo server")
	defer c.Close()
	buf := make([]byte, 64)
	start := time.Now()
	for range 200 {
		_, err := c.Write(buf[:10])
		check(err, "write")
		_, err = io.ReadFull(c, buf[:10])
		check(err, "read")
	}
	return ms(time.Since(start) / 200)
}

func echoServer(sock string) {
	l, err := net.Listen("unix", sock)
	check(err, "listen")
	c, err := l.Accept()
	check(err, "accept")
	_, _ = io.Copy(c, c)
}

func mountNFS(source, target, opts string) error {
	out, err := exec.Command("mount", "-t", "nfs", "-o", opts, source, target).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

func pct(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	if i > 0 {
		i--
	}
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// peakRSSMiB reads VmHWM, the process's peak resident set size.
func peakRSSMiB(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	check(err, "read status")
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func printTable(rs []result) {
	fmt.Println()
	fmt.Printf("%-46s %12s %12s   %s\n", "measure (UML, one run)", "NFSv"+rs[0].NFSVersion, "NFSv"+rs[1].NFSVersion, "target")
	row := func(label, unit string, get func(result) float64, target string, ok func(result) bool) {
		fmt.Printf("%-46s %12s %12s   %s", label, fmt.Sprintf("%.1f%s", get(rs[0]), unit), fmt.Sprintf("%.1f%s", get(rs[1]), unit), target)
		if ok != nil {
			fmt.Printf(" [%s, %s]", verdict(ok(rs[0])), verdict(ok(rs[1])))
		}
		fmt.Println()
	}
	row("CreateVolume+DeleteVolume, sequential", "/s", func(r result) float64 { return r.CreateDeleteSeqPerSec }, ">= 100/s", func(r result) bool { return r.CreateDeleteSeqPerSec >= 100 })
	row("CreateVolume+DeleteVolume, 8 concurrent", "/s", func(r result) float64 { return r.CreateDeleteParPerSec }, "", nil)
	row("  same code path in-process (no gRPC)", "/s", func(r result) float64 { return r.InProcessPerSec }, "", nil)
	row("bare mkdir+rmdir on a mounted share", "/s", func(r result) float64 { return r.BareMkdirRmdirPerSec }, "", nil)
	row("  slowdown of sequential create+delete", "x", func(r result) float64 { return r.SeqRatioToBare }, "<= 5x", func(r result) bool { return r.SeqRatioToBare <= 5 })
	row("  slowdown of in-process create+delete", "x", func(r result) float64 { return r.InProcessRatioToBare }, "<= 5x", func(r result) bool { return r.InProcessRatioToBare <= 5 })
	row("NodePublish+NodeUnpublish p50", "ms", func(r result) float64 { return r.PublishPairP50Ms }, "", nil)
	row("NodePublish+NodeUnpublish p99", "ms", func(r result) float64 { return r.PublishPairP99Ms }, "", nil)
	row("bare mount -t nfs + umount p50", "ms", func(r result) float64 { return r.BareMountPairP50Ms }, "", nil)
	row("  slowdown of publish+unpublish p50", "x", func(r result) float64 { return r.PublishRatioToBare }, "<= 1.2x", func(r result) bool { return r.PublishRatioToBare <= 1.2 })
	row("floor: empty gRPC round trip (GetPluginInfo)", "ms", func(r result) float64 { return r.EmptyRPCMs }, "", nil)
	row("floor: raw unix-socket round trip, 2 processes", "ms", func(r result) float64 { return r.RawPingPongMs }, "", nil)
	row("NodeGetVolumeStats p50", "ms", func(r result) float64 { return r.StatsP50Ms }, "", nil)
	row("driver peak RSS", "MiB", func(r result) float64 { return r.PeakRSSMiB }, "<= 40 MiB", func(r result) bool { return r.PeakRSSMiB <= 40 })
}
