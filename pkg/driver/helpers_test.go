package driver

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/example/nfs-csi/pkg/nfs"
)

const (
	testServer = "10.0.0.1"
	testShare  = "/export"
	testSource = testServer + ":" + testShare
	testNode   = "node-1"
	gib        = int64(1) << 30
)

// testMounter is the FakeMounter with one addition: the controller's share
// mounts (targets directly under <workdir>/shares).
//
// The FakeMounter mounts by replacing the target with a symlink, but
// ShareMounts opens its mount point with O_NOFOLLOW|O_DIRECTORY, which fails
// on a symlink with ENOTDIR ("open share ... not a directory"), so no
// controller RPC works with the plain FakeMounter. Until that is fixed, a
// share mount here moves the exported directory to the mount point and leaves
// a symlink at the export's old place, so the test still sees the share's
// contents at the export path. Node mounts go to the FakeMounter unchanged.
//
// Limitation: an export can back one share mount at a time (one option set).
// Once ShareMounts opens its mount point without O_NOFOLLOW, newEnv can pass
// the plain FakeMounter to New; the tests pass either way (shareMounts and
// nodeMounts read the FakeMounter's table too).
type testMounter struct {
	*nfs.FakeMounter
	sharesDir string

	mu     sync.Mutex
	shares []nfs.MountPoint
	moved  map[string]string // share mount point -> export directory
}

func newTestMounter(fake *nfs.FakeMounter, workDir string) *testMounter {
	return &testMounter{FakeMounter: fake, sharesDir: filepath.Join(workDir, "shares"), moved: map[string]string{}}
}

func (m *testMounter) Mount(ctx context.Context, source, target string, options []string) error {
	if filepath.Dir(target) != m.sharesDir {
		return m.FakeMounter.Mount(ctx, source, target, options)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	fail := func(output string) error {
		return &nfs.MountError{Source: source, Target: target, Output: output, Err: fmt.Errorf("exit status 32")}
	}
	if err := ctx.Err(); err != nil {
		return &nfs.MountError{Source: source, Target: target, Err: err}
	}
	if m.FailWith != "" {
		return fail(m.FailWith)
	}
	dir, ok := m.Exports[source]
	if !ok {
		return fail("mount.nfs: access denied by server while mounting " + source)
	}
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		return fail(fmt.Sprintf("test mounter: export %s (%s) is not a directory or already backs a share mount: %v", source, dir, err))
	}
	if err := os.Remove(target); err != nil {
		return fail(err.Error())
	}
	if err := os.Rename(dir, target); err != nil {
		return fail(err.Error())
	}
	if err := os.Symlink(target, dir); err != nil {
		return fail(err.Error())
	}
	m.moved[target] = dir
	m.shares = append(m.shares, nfs.MountPoint{Path: target, Source: source, FSType: "nfs", Options: options})
	return nil
}

func (m *testMounter) Unmount(ctx context.Context, target string) error {
	m.mu.Lock()
	dir, ok := m.moved[target]
	if !ok {
		m.mu.Unlock()
		return m.FakeMounter.Unmount(ctx, target)
	}
	defer m.mu.Unlock()
	if err := os.Remove(dir); err != nil {
		return err
	}
	if err := os.Rename(target, dir); err != nil {
		return err
	}
	delete(m.moved, target)
	for i, mp := range m.shares {
		if mp.Path == target {
			m.shares = append(m.shares[:i], m.shares[i+1:]...)
			break
		}
	}
	return os.Mkdir(target, 0o750)
}

func (m *testMounter) MountPoints() ([]nfs.MountPoint, error) {
	mps, err := m.FakeMounter.MountPoints()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return append(mps, m.shares...), nil
}

// shareMounts counts the controller's share mounts.
func (m *testMounter) shareMounts() int {
	mps, _ := m.MountPoints()
	n := 0
	for _, mp := range mps {
		if filepath.Dir(mp.Path) == m.sharesDir {
			n++
		}
	}
	return n
}

// nodeMounts lists the mounts other than the controller's share mounts.
func (m *testMounter) nodeMounts() []nfs.MountPoint {
	mps, _ := m.MountPoints()
	var out []nfs.MountPoint
	for _, mp := range mps {
		if filepath.Dir(mp.Path) != m.sharesDir {
			out = append(out, mp)
		}
	}
	return out
}

// env is a driver in mode "both" on node-1 with one export, 10.0.0.1:/export.
type env struct {
	d       *Driver
	fake    *nfs.FakeMounter
	mounter *testMounter
	base    string // parent of exportDir, for "outside the share" checks
	export  string // the exported directory
	workDir string
	helper  string // an existing file standing in for mount.nfs

	closeOnce sync.Once
}

// close closes the driver once; Driver.Close panics when called twice.
func (e *env) close() { e.closeOnce.Do(e.d.Close) }

func newEnv(t *testing.T) *env {
	t.Helper()
	base := t.TempDir()
	e := &env{base: base, export: filepath.Join(base, "export"), workDir: t.TempDir()}
	if err := os.Mkdir(e.export, 0o755); err != nil {
		t.Fatal(err)
	}
	e.helper = filepath.Join(t.TempDir(), "mount.nfs")
	if err := os.WriteFile(e.helper, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	e.fake = nfs.NewFakeMounter(map[string]string{testSource: e.export})
	e.mounter = newTestMounter(e.fake, e.workDir)
	d, err := New(Config{
		Mode: ModeBoth, NodeID: testNode, WorkDir: e.workDir, Mounter: e.mounter, MountHelper: e.helper,
		OperationTimeout: time.Minute, ShareIdleTimeout: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.d = d
	// Registered after the TempDirs, so it runs before their removal and
	// puts the export back in place.
	t.Cleanup(e.close)
	return e
}

// exportPath is a path on the export.
func (e *env) exportPath(rel string) string { return filepath.Join(e.export, filepath.FromSlash(rel)) }

func (e *env) mkdirExport(t *testing.T, rel string) {
	t.Helper()
	if err := os.MkdirAll(e.exportPath(rel), 0o755); err != nil {
		t.Fatal(err)
	}
}

func (e *env) writeExport(t *testing.T, rel, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(e.exportPath(rel)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.exportPath(rel), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// volumeIDFor is the ID the driver gives a volume with default parameters.
func volumeIDFor(subDir string, policy nfs.OnDelete) string {
	return nfs.Volume{Server: testServer, Share: testShare, SubDir: subDir, OnDelete: policy}.ID()
}

func baseParams() map[string]string {
	return map[string]string{"server": testServer, "share": testShare}
}

func withParams(extra map[string]string) map[string]string {
	p := baseParams()
	for k, v := range extra {
		p[k] = v
	}
	return p
}

func mountCap(mode csi.VolumeCapability_AccessMode_Mode, flags ...string) *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{MountFlags: flags}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: mode},
	}
}

func blockCap() *csi.VolumeCapability {
	return &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER},
	}
}

func rwo() *csi.VolumeCapability { return mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER) }

func createReq(name string, params map[string]string) *csi.CreateVolumeRequest {
	return &csi.CreateVolumeRequest{
		Name:               name,
		CapacityRange:      &csi.CapacityRange{RequiredBytes: gib},
		VolumeCapabilities: []*csi.VolumeCapability{rwo()},
		Parameters:         params,
	}
}

// create makes a volume and fails the test if that fails.
func (e *env) create(t *testing.T, name string, params map[string]string) *csi.Volume {
	t.Helper()
	resp, err := e.d.CreateVolume(context.Background(), createReq(name, params))
	if err != nil {
		t.Fatalf("CreateVolume %s: %v", name, err)
	}
	return resp.GetVolume()
}

func wantCode(t *testing.T, err error, want codes.Code) {
	t.Helper()
	if got := status.Code(err); got != want {
		t.Fatalf("got code %v (err %v), want %v", got, err, want)
	}
}

func wantMessageContains(t *testing.T, err error, parts ...string) {
	t.Helper()
	msg := status.Convert(err).Message()
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("message %q does not mention %q", msg, p)
		}
	}
}

// snapshot lists every path below dir (following dir itself if it is a
// symlink) with its size and, for files, its content, skipping the driver's
// record directory.
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	err = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == nfs.MetadataDirName && de.IsDir() {
			return filepath.SkipDir
		}
		entry := rel + " " + de.Type().String()
		if de.Type().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			entry += " " + string(data)
		}
		out = append(out, entry)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
