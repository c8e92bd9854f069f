package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// capability is the access every benchmark volume is created and published
// with.
var capability = &csi.VolumeCapability{
	AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
	AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
}

// driverProc is the driver binary serving both services on a unix socket in
// work, and a client connection to it.
type driverProc struct {
	cmd  *exec.Cmd
	conn *grpc.ClientConn
	log  *os.File
}

func startDriver(driverBin, work string) *driverProc {
	sock := filepath.Join(work, "csi.sock")
	cmd := exec.Command(driverBin, "--endpoint", "unix://"+sock, "--nodeid", "bench-node", "--workdir", filepath.Join(work, "driver"), "-v=0")
	// The driver logs every volume at -v=0; written to the UML console that
	// would measure the console, not the driver.
	logFile, err := os.Create(filepath.Join(work, "driver.log"))
	check(err, "driver log")
	cmd.Stderr = logFile
	check(cmd.Start(), "start driver")
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	check(err, "dial")
	return &driverProc{cmd: cmd, conn: conn, log: logFile}
}

func (p *driverProc) stop() {
	p.conn.Close()
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
	p.log.Close()
}
