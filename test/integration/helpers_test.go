//go:build uml

// Package integration tests the driver against a real kernel NFS server and
// client. The tests run only inside the UML guest that test/uml/run.sh boots
// (build tag "uml"); hack/test.sh compiles them on the host and runs the
// binary there.
package integration

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/example/nfs-csi/pkg/driver"
	"github.com/example/nfs-csi/pkg/nfs"
)

const nodeID = "uml-node"

// nfsVersion is one way of reaching the same export.
type nfsVersion struct {
	name, vers, share string
}

func versions(t *testing.T) []nfsVersion {
	t.Helper()
	export := os.Getenv("NFS_EXPORT_DIR")
	if export == "" || os.Getenv("NFS_SERVER") == "" {
		t.Fatal("NFS_SERVER and NFS_EXPORT_DIR are unset: run these tests through test/uml/run.sh")
	}
	return []nfsVersion{
		{"nfs3", "3", os.Getenv("NFS_SHARE_V3")},
		{"nfs4.1", "4.1", os.Getenv("NFS_SHARE_V4")},
	}
}

func exportDir() string { return os.Getenv("NFS_EXPORT_DIR") }

// env is one driver, serving both services over a real unix socket, and the
// clients of its services.
type env struct {
	t     *testing.T
	v     nfsVersion
	dir   string
	ctrl  csi.ControllerClient
	node  csi.NodeClient
	ident csi.IdentityClient
}

func startDriver(t *testing.T, v nfsVersion) *env {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "it-")
	if err != nil {
		t.Fatal(err)
	}
	sock := "unix://" + filepath.Join(dir, "csi.sock")
	d, err := driver.New(driver.Config{
		Endpoint: sock, NodeID: nodeID, Mode: driver.ModeBoth, WorkDir: filepath.Join(dir, "work"),
		OperationTimeout: 30 * time.Second, ShareIdleTimeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := driver.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := d.NewGRPCServer()
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, v: v, dir: dir, ctrl: csi.NewControllerClient(conn), node: csi.NewNodeClient(conn), ident: csi.NewIdentityClient(conn)}
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
		d.Close()
		os.RemoveAll(dir)
	})
	return e
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	e.t.Cleanup(cancel)
	return ctx
}

func (e *env) params(extra map[string]string) map[string]string {
	p := map[string]string{"server": os.Getenv("NFS_SERVER"), "share": e.v.share, "mountOptions": "vers=" + e.v.vers}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

func mountCap(mode csi.VolumeCapability_AccessMode_Mode) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
	}
}

var rwo = mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER)

func (e *env) create(name string, extra map[string]string) *csi.Volume {
	e.t.Helper()
	resp, err := e.ctrl.CreateVolume(e.ctx(), &csi.CreateVolumeRequest{
		Name: name, Parameters: e.params(extra), VolumeCapabilities: []*csi.VolumeCapability{rwo},
	})
	if err != nil {
		e.t.Fatalf("CreateVolume %s: %v", name, err)
	}
	return resp.GetVolume()
}

func (e *env) delete(id string) {
	e.t.Helper()
	if _, err := e.ctrl.DeleteVolume(e.ctx(), &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
		e.t.Fatalf("DeleteVolume %s: %v", id, err)
	}
}

func (e *env) publish(vol *csi.Volume, target string, c *csi.VolumeCapability, readonly bool) {
	e.t.Helper()
	_, err := e.node.NodePublishVolume(e.ctx(), &csi.NodePublishVolumeRequest{
		VolumeId: vol.GetVolumeId(), TargetPath: target, VolumeCapability: c, Readonly: readonly, VolumeContext: vol.GetVolumeContext(),
	})
	if err != nil {
		e.t.Fatalf("NodePublishVolume %s at %s: %v", vol.GetVolumeId(), target, err)
	}
}

func (e *env) unpublish(id, target string) {
	e.t.Helper()
	if _, err := e.node.NodeUnpublishVolume(e.ctx(), &csi.NodeUnpublishVolumeRequest{VolumeId: id, TargetPath: target}); err != nil {
		e.t.Fatalf("NodeUnpublishVolume %s at %s: %v", id, target, err)
	}
}

func (e *env) target(name string) string { return filepath.Join(e.dir, "pods", name, "mount") }

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want code %v", err, code)
	}
}

// mountSource returns the source mounted at path, from the live mount table
// as the driver reads it.
func mountSource(t *testing.T, path string) (string, bool) {
	t.Helper()
	mp, ok, err := nfs.FindMount(&nfs.SystemMounter{}, path)
	if err != nil {
		t.Fatal(err)
	}
	return mp.Source, ok
}

// treeSnapshot lists every entry below root with its type, mode and size, so
// that a before/after comparison catches any change.
func treeSnapshot(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		size := info.Size()
		if d.IsDir() {
			size = 0
		}
		line := strings.TrimPrefix(p, root) + " " + info.Mode().String() + " " + strconv.FormatInt(size, 10)
		if d.Type()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			line += " -> " + target
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func mustWrite(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// archivesOf lists the archived-<base>-* entries in dir.
func archivesOf(t *testing.T, dir, base string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "archived-"+base+"-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// volumeRecords lists the live volume records on the export: the entries of
// the records directory named by a subDir's key (32 hex digits), without the
// markers beside them and without the tombstones of retained volumes.
func volumeRecords(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(exportDir(), nfs.RecordDir))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if len(e.Name()) != 32 || strings.Trim(e.Name(), "0123456789abcdef") != "" {
			continue
		}
		target, err := os.Readlink(filepath.Join(exportDir(), nfs.RecordDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(target, `"tombstone":true`) {
			out = append(out, e.Name()+" -> "+target)
		}
	}
	return out
}
