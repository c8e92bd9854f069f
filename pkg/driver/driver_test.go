package driver

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr []string
	}{
		{name: "bad mode", cfg: Config{Mode: "all", NodeID: testNode}, wantErr: []string{"--mode", `"all"`}},
		{name: "node mode without node ID", cfg: Config{Mode: ModeNode}, wantErr: []string{"--nodeid", "node"}},
		{name: "both without node ID", cfg: Config{Mode: ModeBoth, WorkDir: "WORKDIR"}, wantErr: []string{"--nodeid"}},
		{name: "default mode without node ID", cfg: Config{WorkDir: "WORKDIR"}, wantErr: []string{"--nodeid"}},
		{name: "node ID over 256 bytes", cfg: Config{Mode: ModeNode, NodeID: strings.Repeat("n", 257)}, wantErr: []string{"--nodeid", "257", "256"}},
		{name: "controller without workdir", cfg: Config{Mode: ModeController}, wantErr: []string{"--workdir"}},
		{name: "node ID of 256 bytes", cfg: Config{Mode: ModeNode, NodeID: strings.Repeat("n", 256)}},
		{name: "controller needs no node ID", cfg: Config{Mode: ModeController, WorkDir: "WORKDIR"}},
		{name: "node needs no workdir", cfg: Config{Mode: ModeNode, NodeID: testNode}},
		{name: "cluster ID: a namespace UID", cfg: Config{Mode: ModeController, WorkDir: "WORKDIR", ClusterID: "0f6c3d2e-9a1b-4c5d-8e7f-1a2b3c4d5e6f"}},
		{name: "cluster ID of 256 bytes", cfg: Config{Mode: ModeController, WorkDir: "WORKDIR", ClusterID: strings.Repeat("c", 256)}},
		{name: "cluster ID over 256 bytes", cfg: Config{Mode: ModeController, WorkDir: "WORKDIR", ClusterID: strings.Repeat("c", 257)}, wantErr: []string{"--cluster-id", "257", "256"}},
		{name: "cluster ID with a space", cfg: Config{Mode: ModeController, WorkDir: "WORKDIR", ClusterID: "prod east"}, wantErr: []string{"--cluster-id", `"prod east"`, "white space"}},
		{name: "cluster ID with a newline", cfg: Config{Mode: ModeController, WorkDir: "WORKDIR", ClusterID: "prod\neast"}, wantErr: []string{"--cluster-id", "control character"}},
		{name: "cluster ID not UTF-8", cfg: Config{Mode: ModeController, WorkDir: "WORKDIR", ClusterID: "prod\xff"}, wantErr: []string{"--cluster-id", "UTF-8"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.WorkDir == "WORKDIR" {
				tc.cfg.WorkDir = t.TempDir()
			}
			d, err := New(tc.cfg)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				d.Close()
				return
			}
			if err == nil {
				d.Close()
				t.Fatalf("New(%+v) succeeded, want an error", tc.cfg)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	workDir := t.TempDir()
	d, err := New(Config{NodeID: testNode, WorkDir: workDir})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.cfg.Mode != ModeBoth || d.cfg.DriverName != DefaultDriverName ||
		d.cfg.OperationTimeout != DefaultOperationTimeout || d.cfg.ShareIdleTimeout != DefaultShareIdleTimeout {
		t.Errorf("defaults not applied: %+v", d.cfg)
	}
	if d.mounter == nil || d.shares == nil {
		t.Error("no mounter or share cache")
	}
	if fi, err := os.Stat(filepath.Join(workDir, "shares")); err != nil || !fi.IsDir() {
		t.Errorf("share mount directory not created: %v", err)
	}
}

var testInfo = &grpc.UnaryServerInfo{FullMethod: "/csi.v1.Controller/CreateVolume"}

func TestLogAndRecover(t *testing.T) {
	req := &csi.CreateVolumeRequest{Name: "pvc-1", Secrets: map[string]string{"password": "hunter2"}}
	tests := []struct {
		name     string
		handler  grpc.UnaryHandler
		wantCode codes.Code
		wantResp bool
		wantMsg  []string
	}{
		{
			name:     "panic",
			handler:  func(context.Context, any) (any, error) { panic("boom") },
			wantCode: codes.Internal, wantMsg: []string{"boom", testInfo.FullMethod},
		},
		{
			name: "nil map panic",
			handler: func(context.Context, any) (any, error) {
				var m map[string]int
				//lint:ignore SA5000 a runtime panic, not a bug: the interceptor must turn it into Internal
				m["x"]++
				return nil, nil
			},
			wantCode: codes.Internal,
		},
		{
			name:     "error passes through",
			handler:  func(context.Context, any) (any, error) { return nil, status.Error(codes.NotFound, "no such volume") },
			wantCode: codes.NotFound, wantMsg: []string{"no such volume"},
		},
		{
			name:     "success passes through",
			handler:  func(context.Context, any) (any, error) { return &csi.CreateVolumeResponse{}, nil },
			wantCode: codes.OK, wantResp: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := logAndRecover(context.Background(), req, testInfo, tc.handler)
			wantCode(t, err, tc.wantCode)
			wantMessageContains(t, err, tc.wantMsg...)
			if (resp != nil) != tc.wantResp {
				t.Errorf("response %v, want one: %v", resp, tc.wantResp)
			}
		})
	}
	if req.Secrets["password"] != "hunter2" {
		t.Error("logging modified the request's secrets")
	}
}

func TestListen(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sub", "csi.sock")
	// A stale socket file from an earlier run is replaced.
	if err := os.MkdirAll(filepath.Dir(sock), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	lis, err := Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	lis.Close()

	tcp, err := Listen("tcp://127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcp.Close()

	for _, bad := range []string{"http://localhost:1", "/plain/path", "unix://%zz"} {
		if lis, err := Listen(bad); err == nil {
			lis.Close()
			t.Errorf("Listen(%q) succeeded, want an error", bad)
		}
	}
}

// serve runs d's gRPC server on a unix socket in a temp dir and returns a
// connection to it.
func serve(t *testing.T, d *Driver) *grpc.ClientConn {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "csi.sock")
	lis, err := Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := d.NewGRPCServer()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(lis) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("Serve: %v", err)
		}
	})
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func TestGRPCServer(t *testing.T) {
	e := newEnv(t)
	conn := serve(t, e.d)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	info, err := csi.NewIdentityClient(conn).GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetName() != DefaultDriverName {
		t.Errorf("name %q", info.GetName())
	}

	req := createReq("pvc-1", baseParams())
	req.Secrets = map[string]string{"password": "hunter2"}
	resp, err := csi.NewControllerClient(conn).CreateVolume(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetVolume().GetVolumeId() != volumeIDFor("pvc-1", "delete") || !exists(e.exportPath("pvc-1")) {
		t.Errorf("CreateVolume over gRPC: %v; directory exists: %v", resp.GetVolume(), exists(e.exportPath("pvc-1")))
	}

	// Errors keep their code over the wire.
	_, err = csi.NewControllerClient(conn).CreateVolume(ctx, &csi.CreateVolumeRequest{})
	wantCode(t, err, codes.InvalidArgument)

	node, err := csi.NewNodeClient(conn).NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
	if err != nil || node.GetNodeId() != testNode {
		t.Errorf("NodeGetInfo over gRPC: %v, %v", node, err)
	}
}

func TestGRPCServerRegistersOnlyItsMode(t *testing.T) {
	helper := filepath.Join(t.TempDir(), "mount.nfs")
	if err := os.WriteFile(helper, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{Mode: ModeNode, NodeID: testNode, MountHelper: helper})
	if err != nil {
		t.Fatal(err)
	}
	conn := serve(t, d)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := csi.NewIdentityClient(conn).Probe(ctx, &csi.ProbeRequest{}); err != nil {
		t.Errorf("Probe: %v", err)
	}
	if _, err := csi.NewNodeClient(conn).NodeGetInfo(ctx, &csi.NodeGetInfoRequest{}); err != nil {
		t.Errorf("NodeGetInfo: %v", err)
	}
	_, err = csi.NewControllerClient(conn).CreateVolume(ctx, createReq("pvc-1", baseParams()))
	wantCode(t, err, codes.Unimplemented)
}

func TestVersion(t *testing.T) {
	if Version() == "" {
		t.Error("empty version")
	}
	info := VersionInfo()
	for _, want := range []string{Version(), "commit=", "go=", "os=", "arch="} {
		if !strings.Contains(info, want) {
			t.Errorf("VersionInfo() = %q lacks %q", info, want)
		}
	}
}

func TestRun(t *testing.T) {
	e := newEnv(t)
	sock := filepath.Join(t.TempDir(), "csi.sock")
	cfg := Config{Endpoint: "unix://" + sock, Mode: ModeNode, NodeID: testNode, Mounter: e.fake, MountHelper: e.helper}

	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()

	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	callCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	info, err := csi.NewNodeClient(conn).NodeGetInfo(callCtx, &csi.NodeGetInfoRequest{}, grpc.WaitForReady(true))
	if err != nil || info.GetNodeId() != testNode {
		t.Fatalf("NodeGetInfo from Run's server: %v, %v", info, err)
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run after its context ended: %v", err)
	}

	for _, bad := range []Config{
		{Endpoint: "unix://" + sock, Mode: "bogus"},
		{Endpoint: "ftp://host/x", Mode: ModeNode, NodeID: testNode, Mounter: e.fake},
	} {
		if err := Run(context.Background(), bad); err == nil {
			t.Errorf("Run(%+v) succeeded, want an error", bad)
		}
	}
}
