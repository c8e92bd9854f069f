package driver

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/example/nfs-csi/pkg/agent"
	"github.com/example/nfs-csi/pkg/agent/agenttest"
	"github.com/example/nfs-csi/pkg/nfs"
)

// quotaAgentBed is a quota agent serving the env's export over loopback
// mutual TLS, with a fake kernel, and the secrets a controller needs.
type quotaAgentBed struct {
	addr    string
	quotas  *agent.FakeQuotas
	secrets map[string]string
	stop    func()
}

func startQuotaAgent(t *testing.T, e *env, addr string) *quotaAgentBed {
	t.Helper()
	pki, cert, key, ca, err := agenttest.AgentFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	client, err := pki.Client("nfs-csi-controller")
	if err != nil {
		t.Fatal(err)
	}
	b := &quotaAgentBed{quotas: agent.NewFakeQuotas(), secrets: map[string]string{
		SecretAgentCert: string(client.CertPEM), SecretAgentKey: string(client.KeyPEM), SecretAgentCA: string(pki.CAPEM),
	}}
	b.addr = b.serve(t, e, addr, cert, key, ca)
	return b
}

func (b *quotaAgentBed) serve(t *testing.T, e *env, addr, cert, key, ca string) string {
	t.Helper()
	a, err := agent.New([]agent.Root{{Share: testShare, Path: e.export}}, agent.IDRange{Min: 7000, Max: 7099}, b.quotas)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := agent.ServerTLS(cert, key, ca)
	if err != nil {
		t.Fatal(err)
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln, cfg) }()
	var stopped bool
	b.stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(b.stop)
	return ln.Addr().String()
}

func (b *quotaAgentBed) params() map[string]string {
	return withParams(map[string]string{ParamCapacity: CapacityEnforced, ParamQuotaAgent: b.addr})
}

func enforcedReq(name string, b *quotaAgentBed) *csi.CreateVolumeRequest {
	r := createReq(name, b.params())
	r.Secrets = b.secrets
	return r
}

func (e *env) record(t *testing.T, subDir string) nfs.Record {
	t.Helper()
	fd, err := os.Open(filepath.Join(e.export, nfs.RecordDir))
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	rec, ok, err := nfs.ReadRecord(int(fd.Fd()), subDir)
	if err != nil || !ok {
		t.Fatalf("record of %s: %v, %v", subDir, ok, err)
	}
	return rec
}

func TestEnforcedCreateSetsTheLimit(t *testing.T) {
	e := newEnv(t)
	b := startQuotaAgent(t, e, "")
	for i := 0; i < 2; i++ { // a retry is the same volume with the same limit
		resp, err := e.d.CreateVolume(context.Background(), enforcedReq("pvc-1", b))
		if err != nil {
			t.Fatalf("CreateVolume #%d: %v", i+1, err)
		}
		if resp.GetVolume().GetCapacityBytes() != gib {
			t.Errorf("capacity %d, want %d", resp.GetVolume().GetCapacityBytes(), gib)
		}
	}
	id := b.quotas.ProjectOf(e.exportPath("pvc-1"))
	if id != 7000 || b.quotas.Limits[id] != gib {
		t.Fatalf("directory has project %d with limit %d, want 7000 with 1 GiB", id, b.quotas.Limits[id])
	}
	if rec := e.record(t, "pvc-1"); rec.QuotaAgent != b.addr || rec.CapacityBytes != gib {
		t.Errorf("record %+v, want the agent %s and 1 GiB", rec, b.addr)
	}
	// The same name in a class that does not enforce is another volume.
	_, err := e.d.CreateVolume(context.Background(), createReq("pvc-1", baseParams()))
	wantCode(t, err, codes.AlreadyExists)
}

func TestEnforcedCreateWaitsForTheAgent(t *testing.T) {
	e := newEnv(t)
	b := startQuotaAgent(t, e, "")
	b.stop()
	before := snapshot(t, e.export)
	_, err := e.d.CreateVolume(context.Background(), enforcedReq("pvc-1", b))
	wantCode(t, err, codes.Unavailable)
	wantMessageContains(t, err, b.addr, "pvc-1")
	if after := snapshot(t, e.export); !sameStrings(before, after) || exists(filepath.Join(e.export, nfs.RecordDir)) {
		t.Errorf("CreateVolume with its agent down changed the export: %v -> %v", before, after)
	}
	// Back on the same address: the retry succeeds, enforced.
	again := startQuotaAgent(t, e, b.addr)
	if _, err := e.d.CreateVolume(context.Background(), enforcedReq("pvc-1", again)); err != nil {
		t.Fatal(err)
	}
	if id := again.quotas.ProjectOf(e.exportPath("pvc-1")); id == 0 {
		t.Errorf("the volume was created without a project")
	}
}

func TestEnforcedCreateRefusals(t *testing.T) {
	e := newEnv(t)
	b := startQuotaAgent(t, e, "")
	noSecrets := enforcedReq("pvc-1", b)
	noSecrets.Secrets = nil
	noSize := enforcedReq("pvc-2", b)
	noSize.CapacityRange = nil
	symlinked := enforcedReq("pvc-3", b)
	for _, tc := range []struct {
		name  string
		req   *csi.CreateVolumeRequest
		setup func()
		want  codes.Code
		parts []string
	}{
		{"no client certificate in the secrets", noSecrets, nil, codes.InvalidArgument, []string{SecretAgentCert, "provisioner-secret-name"}},
		{"no size", noSize, nil, codes.InvalidArgument, []string{"resources.requests.storage"}},
		{"a symlink where the directory goes", symlinked, func() {
			if err := os.Symlink(e.base, e.exportPath("pvc-3")); err != nil {
				t.Fatal(err)
			}
		}, codes.FailedPrecondition, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			_, err := e.d.CreateVolume(context.Background(), tc.req)
			wantCode(t, err, tc.want)
			wantMessageContains(t, err, tc.parts...)
			if len(b.quotas.Limits) != 0 {
				t.Errorf("a refused create set limits %v", b.quotas.Limits)
			}
		})
	}
}

func TestCapacityParameters(t *testing.T) {
	for _, tc := range []struct {
		params map[string]string
		ok     bool
	}{
		{map[string]string{ParamCapacity: "enforced", ParamQuotaAgent: "nfs.example:9820"}, true},
		{map[string]string{ParamCapacity: "Recorded"}, true},
		{map[string]string{ParamCapacity: "enforced"}, false},
		{map[string]string{ParamQuotaAgent: "nfs.example:9820"}, false},
		{map[string]string{ParamCapacity: "enforced", ParamQuotaAgent: "nfs.example"}, false},
		{map[string]string{ParamCapacity: "enforced", ParamQuotaAgent: "bad host:1"}, false},
		{map[string]string{ParamCapacity: "strict", ParamQuotaAgent: "nfs.example:9820"}, false},
	} {
		_, err := parseCreateParams(withParams(tc.params))
		if (err == nil) != tc.ok {
			t.Errorf("parseCreateParams(%v) = %v, want ok=%v", tc.params, err, tc.ok)
		}
	}
}

func expandReq(id string, bytes int64, secrets map[string]string) *csi.ControllerExpandVolumeRequest {
	return &csi.ControllerExpandVolumeRequest{VolumeId: id, CapacityRange: &csi.CapacityRange{RequiredBytes: bytes}, Secrets: secrets, VolumeCapability: rwo()}
}

func TestControllerExpandVolume(t *testing.T) {
	e := newEnv(t)
	b := startQuotaAgent(t, e, "")
	recorded := e.create(t, "pvc-recorded", baseParams()).GetVolumeId()
	resp, err := e.d.CreateVolume(context.Background(), enforcedReq("pvc-enforced", b))
	if err != nil {
		t.Fatal(err)
	}
	enforced := resp.GetVolume().GetVolumeId()

	for _, tc := range []struct {
		name     string
		id       string
		bytes    int64
		wantSize int64
	}{
		{"recorded: larger", recorded, 2 * gib, 2 * gib},
		{"recorded: the same again", recorded, 2 * gib, 2 * gib},
		{"recorded: smaller is a no-op", recorded, gib, 2 * gib},
		{"enforced: larger", enforced, 3 * gib, 3 * gib},
		{"enforced: the same again", enforced, 3 * gib, 3 * gib},
		{"enforced: smaller is a no-op", enforced, gib, 3 * gib},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.d.ControllerExpandVolume(context.Background(), expandReq(tc.id, tc.bytes, b.secrets))
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetCapacityBytes() != tc.wantSize || resp.GetNodeExpansionRequired() {
				t.Errorf("response %v, want %d bytes and no node expansion", resp, tc.wantSize)
			}
		})
	}
	if rec := e.record(t, "pvc-recorded"); rec.CapacityBytes != 2*gib {
		t.Errorf("recorded volume's record has %d bytes, want 2 GiB", rec.CapacityBytes)
	}
	if id := b.quotas.ProjectOf(e.exportPath("pvc-enforced")); b.quotas.Limits[id] != 3*gib {
		t.Errorf("enforced volume's limit is %d, want 3 GiB", b.quotas.Limits[id])
	}

	b.stop()
	_, err = e.d.ControllerExpandVolume(context.Background(), expandReq(enforced, 4*gib, b.secrets))
	wantCode(t, err, codes.Unavailable)
	if rec := e.record(t, "pvc-enforced"); rec.CapacityBytes != 3*gib {
		t.Errorf("an expansion the agent did not get changed the record to %d bytes", rec.CapacityBytes)
	}

	_, err = e.d.ControllerExpandVolume(context.Background(), &csi.ControllerExpandVolumeRequest{VolumeId: recorded})
	wantCode(t, err, codes.InvalidArgument)
	_, err = e.d.ControllerExpandVolume(context.Background(), expandReq("", gib, nil))
	wantCode(t, err, codes.InvalidArgument)
	_, err = e.d.ControllerExpandVolume(context.Background(), expandReq("not-ours", gib, nil))
	wantCode(t, err, codes.NotFound)
	_, err = e.d.ControllerExpandVolume(context.Background(), expandReq(volumeIDFor("never-made", nfs.OnDeleteDelete), gib, nil))
	wantCode(t, err, codes.NotFound)
}

func TestDeleteClearsTheQuota(t *testing.T) {
	for _, policy := range []nfs.OnDelete{nfs.OnDeleteDelete, nfs.OnDeleteRetain, nfs.OnDeleteArchive} {
		t.Run(string(policy), func(t *testing.T) {
			e := newEnv(t)
			b := startQuotaAgent(t, e, "")
			r := enforcedReq("pvc-1", b)
			r.Parameters[ParamOnDelete] = string(policy)
			resp, err := e.d.CreateVolume(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			id := resp.GetVolume().GetVolumeId()
			dir := e.exportPath("pvc-1")
			b.stop()
			_, err = e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: id, Secrets: b.secrets})
			wantCode(t, err, codes.Unavailable)
			if !exists(dir) {
				t.Fatalf("DeleteVolume with the agent down removed the directory")
			}
			again := startQuotaAgent(t, e, b.addr)
			again.quotas.Projects, again.quotas.Inherit, again.quotas.Limits = b.quotas.Projects, b.quotas.Inherit, b.quotas.Limits
			if _, err := e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: id, Secrets: again.secrets}); err != nil {
				t.Fatal(err)
			}
			if len(again.quotas.Limits) != 0 {
				t.Errorf("limits left after DeleteVolume: %v", again.quotas.Limits)
			}
			if policy == nfs.OnDeleteRetain && again.quotas.ProjectOf(dir) != 0 {
				t.Errorf("the retained directory kept project %d", again.quotas.ProjectOf(dir))
			}
			if entries, _ := os.ReadDir(filepath.Join(e.export, agent.ProjectDir)); len(entries) != 0 {
				t.Errorf("project IDs still assigned after DeleteVolume: %v", entries)
			}
		})
	}
}

func TestGetCapacity(t *testing.T) {
	e := newEnv(t)
	resp, err := e.d.GetCapacity(context.Background(), &csi.GetCapacityRequest{Parameters: baseParams(), VolumeCapabilities: []*csi.VolumeCapability{rwo()}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetAvailableCapacity() <= 0 {
		t.Errorf("available capacity %d, want the export's free bytes", resp.GetAvailableCapacity())
	}
	if resp, err := e.d.GetCapacity(context.Background(), &csi.GetCapacityRequest{}); err != nil || resp.GetAvailableCapacity() != 0 {
		t.Errorf("GetCapacity without parameters = %v, %v; want 0 and no error", resp, err)
	}
	_, err = e.d.GetCapacity(context.Background(), &csi.GetCapacityRequest{Parameters: map[string]string{"server": testServer}})
	wantCode(t, err, codes.InvalidArgument)
}

// Regression: a restore or a clone in an enforcing class used to be made
// and filled with no project quota at all (the content-source path returned
// before the limit was set), an unenforced volume that the class promised
// to enforce.
func TestEnforcedRestoreAndCloneGetTheirLimit(t *testing.T) {
	e := newEnv(t)
	b := startQuotaAgent(t, e, "")
	ctx := context.Background()
	src, err := e.d.CreateVolume(ctx, enforcedReq("src", b))
	if err != nil {
		t.Fatal(err)
	}
	e.writeExport(t, "src/data.txt", "data")
	snap, err := e.d.CreateSnapshot(ctx, snapReq("snap-1", src.GetVolume().GetVolumeId()))
	if err != nil {
		t.Fatal(err)
	}
	for name, from := range map[string]*csi.VolumeContentSource{
		"restored": fromSnapshot(snap.GetSnapshot().GetSnapshotId()),
		"cloned":   fromVolume(src.GetVolume().GetVolumeId()),
	} {
		req := enforcedReq(name, b)
		req.VolumeContentSource = from
		if _, err := e.d.CreateVolume(ctx, req); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		id := b.quotas.ProjectOf(e.exportPath(name))
		if id == 0 || b.quotas.Limits[id] != gib {
			t.Errorf("%s: project %d with limit %d, want a project with 1 GiB", name, id, b.quotas.Limits[id])
		}
		if got := e.read(t, name+"/data.txt"); got != "data" {
			t.Errorf("%s: data %q", name, got)
		}
	}
}
