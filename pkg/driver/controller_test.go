package driver

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"

	"github.com/example/nfs-csi/pkg/nfs"
)

func TestControllerGetCapabilities(t *testing.T) {
	e := newEnv(t)
	resp, err := e.d.ControllerGetCapabilities(context.Background(), &csi.ControllerGetCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[csi.ControllerServiceCapability_RPC_Type]bool{}
	for _, c := range resp.GetCapabilities() {
		got[c.GetRpc().GetType()] = true
	}
	for _, want := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_PUBLISH_UNPUBLISH_VOLUME,
		csi.ControllerServiceCapability_RPC_GET_VOLUME,
		csi.ControllerServiceCapability_RPC_GET_VOLUME_HEALTH,
		csi.ControllerServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
		csi.ControllerServiceCapability_RPC_EXPAND_VOLUME,
		csi.ControllerServiceCapability_RPC_GET_CAPACITY,
	} {
		if !got[want] {
			t.Errorf("capability %v missing from %v", want, resp.GetCapabilities())
		}
	}
	if len(got) != len(resp.GetCapabilities()) {
		t.Errorf("duplicate capabilities in %v", resp.GetCapabilities())
	}
}

func TestCreateVolumeInvalidArgument(t *testing.T) {
	e := newEnv(t)
	tmpl := func(subDir, pvcName string) map[string]string {
		return withParams(map[string]string{
			"subDir":                           subDir,
			"csi.storage.k8s.io/pvc/name":      pvcName,
			"csi.storage.k8s.io/pvc/namespace": "ns",
			"csi.storage.k8s.io/pv/name":       "pvc-1234",
		})
	}
	tests := []struct {
		name    string
		mutate  func(r *csi.CreateVolumeRequest)
		wantMsg []string
	}{
		{"no name", func(r *csi.CreateVolumeRequest) { r.Name = "" }, []string{"name"}},
		{"no capabilities", func(r *csi.CreateVolumeRequest) { r.VolumeCapabilities = nil }, []string{"capabilities"}},
		{"nil capability", func(r *csi.CreateVolumeRequest) { r.VolumeCapabilities = []*csi.VolumeCapability{nil} }, []string{"capability"}},
		{"block capability", func(r *csi.CreateVolumeRequest) { r.VolumeCapabilities = []*csi.VolumeCapability{rwo(), blockCap()} }, []string{"block"}},
		{"no access type", func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = []*csi.VolumeCapability{{AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}}
		}, []string{"access type"}},
		{"missing access mode", func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = []*csi.VolumeCapability{{AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}}}}
		}, []string{"access mode"}},
		{"unknown access mode", func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_UNKNOWN)}
		}, []string{"access mode"}},
		{"bad mount flag", func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, "a b")}
		}, []string{"mount flags"}},
		{"two NFS versions in the class's mount options", func(r *csi.CreateVolumeRequest) {
			r.VolumeCapabilities = []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, "nfsvers=3", "nfsvers=4.1", "nolock")}
		}, []string{"nfsvers=3, nfsvers=4.1", "pvc-1"}},
		{"a version in the parameter and another in the class", func(r *csi.CreateVolumeRequest) {
			r.Parameters["mountOptions"] = "vers=4.2"
			r.VolumeCapabilities = []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER, "nfsvers=4.1")}
		}, []string{"vers=4.2, nfsvers=4.1"}},
		{"missing server", func(r *csi.CreateVolumeRequest) { delete(r.Parameters, "server") }, []string{`"server"`}},
		{"missing share", func(r *csi.CreateVolumeRequest) { delete(r.Parameters, "share") }, []string{`"share"`}},
		{"unknown parameter", func(r *csi.CreateVolumeRequest) { r.Parameters["colour"] = "blue" }, []string{`"colour"`}},
		{"bad mountPermissions", func(r *csi.CreateVolumeRequest) { r.Parameters["mountPermissions"] = "999" }, []string{"mountPermissions"}},
		{"negative capacity", func(r *csi.CreateVolumeRequest) { r.CapacityRange = &csi.CapacityRange{RequiredBytes: -1} }, []string{"negative"}},
		{"empty capacity range", func(r *csi.CreateVolumeRequest) {
			r.CapacityRange = &csi.CapacityRange{RequiredBytes: 2 * gib, LimitBytes: gib}
		}, []string{"limit"}},
		{"snapshot on another server", func(r *csi.CreateVolumeRequest) {
			id := nfs.Snapshot{Server: "10.0.0.9", Share: "/export", Name: "snap-1"}.ID()
			r.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{SnapshotId: id}}}
		}, []string{"10.0.0.9:/export", "only within one share"}},
		{"source volume on another share", func(r *csi.CreateVolumeRequest) {
			id := nfs.Volume{Server: "10.0.0.1", Share: "/other", SubDir: "x", OnDelete: nfs.OnDeleteDelete}.ID()
			r.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{VolumeId: id}}}
		}, []string{"10.0.0.1:/other", "only within one share"}},
		{"empty snapshot ID", func(r *csi.CreateVolumeRequest) {
			r.VolumeContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{}}}
		}, []string{"snapshot ID is empty"}},
		{"name with a slash and no template", func(r *csi.CreateVolumeRequest) { r.Name = "a/b" }, []string{"subDir template"}},
		{"name .. and no template", func(r *csi.CreateVolumeRequest) { r.Name = ".." }, []string{`".."`}},
		{"name under the metadata dir", func(r *csi.CreateVolumeRequest) { r.Name = ".nfs-csi" }, []string{".nfs-csi"}},
		{"template ../x", func(r *csi.CreateVolumeRequest) { r.Parameters = tmpl("../x", "data") }, []string{"subDir", `".."`}},
		{"template with a leading slash", func(r *csi.CreateVolumeRequest) { r.Parameters = tmpl("/abs/${pvc.metadata.name}", "data") }, []string{"subDir"}},
		{"template with ../ after a variable", func(r *csi.CreateVolumeRequest) { r.Parameters = tmpl("${pvc.metadata.name}/../../x", "data") }, []string{"subDir"}},
		{"pvc name ..", func(r *csi.CreateVolumeRequest) {
			r.Parameters = tmpl("${pvc.metadata.namespace}/${pvc.metadata.name}", "..")
		}, []string{"pvc.metadata.name", `".."`}},
		{"pvc name with a slash", func(r *csi.CreateVolumeRequest) { r.Parameters = tmpl("${pvc.metadata.name}", "a/../../b") }, []string{"pvc.metadata.name"}},
		{"template expanding to the share root", func(r *csi.CreateVolumeRequest) {
			r.Parameters = withParams(map[string]string{"subDir": "${pvc.metadata.name}"})
		}, []string{"csi.storage.k8s.io/pvc/name", "--extra-create-metadata"}},
		{"template with an unknown variable", func(r *csi.CreateVolumeRequest) { r.Parameters = tmpl("${pvc.metadata.uid}", "data") }, []string{"pvc.metadata.uid"}},
		{"template into the metadata dir", func(r *csi.CreateVolumeRequest) { r.Parameters = tmpl(".nfs-csi/${pvc.metadata.name}", "data") }, []string{".nfs-csi"}},
		{"pathPattern with a claim label", func(r *csi.CreateVolumeRequest) {
			r.Parameters = withParams(map[string]string{"pathPattern": "${.PVC.labels.team}/${.PVC.name}", "csi.storage.k8s.io/pvc/name": "data"})
		}, []string{"${.PVC.labels.team}", "csi-provisioner passes CreateVolume only the claim's name and namespace"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := snapshot(t, e.export)
			req := createReq("pvc-1", baseParams())
			tc.mutate(req)
			_, err := e.d.CreateVolume(context.Background(), req)
			wantCode(t, err, codes.InvalidArgument)
			wantMessageContains(t, err, tc.wantMsg...)
			if after := snapshot(t, e.export); !sameStrings(before, after) {
				t.Errorf("the export changed: before %q, after %q", before, after)
			}
		})
	}
	if entries, _ := os.ReadDir(e.base); len(entries) != 1 {
		t.Errorf("something was created beside the export: %v", entries)
	}
}

func TestCreateVolume(t *testing.T) {
	tests := []struct {
		name        string
		volName     string
		params      map[string]string
		caps        []*csi.VolumeCapability
		capacity    *csi.CapacityRange
		wantSubDir  string
		wantCap     int64
		wantContext map[string]string
	}{
		{
			name: "default subDir is the volume name", volName: "pvc-1", params: baseParams(),
			capacity: &csi.CapacityRange{RequiredBytes: gib}, wantSubDir: "pvc-1", wantCap: gib,
			wantContext: map[string]string{"server": testServer, "share": testShare, "subDir": "pvc-1"},
		},
		{
			name: "limit only", volName: "pvc-2", params: baseParams(),
			capacity: &csi.CapacityRange{LimitBytes: 3 * gib}, wantSubDir: "pvc-2", wantCap: 3 * gib,
			wantContext: map[string]string{"server": testServer, "share": testShare, "subDir": "pvc-2"},
		},
		{
			name: "no capacity range", volName: "pvc-3", params: baseParams(), wantSubDir: "pvc-3", wantCap: 0,
			wantContext: map[string]string{"server": testServer, "share": testShare, "subDir": "pvc-3"},
		},
		{
			name: "nested template", volName: "pvc-4",
			params: withParams(map[string]string{
				"subDir":                           "${pvc.metadata.namespace}/${pvc.metadata.name}",
				"csi.storage.k8s.io/pvc/name":      "data",
				"csi.storage.k8s.io/pvc/namespace": "team-a",
				"csi.storage.k8s.io/pv/name":       "pvc-4",
			}),
			capacity: &csi.CapacityRange{RequiredBytes: gib}, wantSubDir: "team-a/data", wantCap: gib,
			wantContext: map[string]string{"server": testServer, "share": testShare, "subDir": "team-a/data"},
		},
		{
			name: "pathPattern of an nfs-subdir-external-provisioner class", volName: "pvc-7",
			params: withParams(map[string]string{
				"pathPattern":                      "${.PVC.namespace}-${.PVC.name}-${pv.metadata.name}",
				"archiveOnDelete":                  "false",
				"csi.storage.k8s.io/pvc/name":      "data",
				"csi.storage.k8s.io/pvc/namespace": "team-a",
				"csi.storage.k8s.io/pv/name":       "pvc-7",
			}),
			wantSubDir:  "team-a-data-pvc-7",
			wantContext: map[string]string{"server": testServer, "share": testShare, "subDir": "team-a-data-pvc-7"},
		},
		{
			name: "template with literal text", volName: "pvc-5",
			params: withParams(map[string]string{
				"SubDir":                     "vols/${pv.metadata.name}-x",
				"csi.storage.k8s.io/pv/name": "pvc-5",
			}),
			wantSubDir:  "vols/pvc-5-x",
			wantContext: map[string]string{"server": testServer, "share": testShare, "subDir": "vols/pvc-5-x"},
		},
		{
			name: "mount options from the class and the capability", volName: "pvc-6",
			params:      withParams(map[string]string{"mountOptions": "nfsvers=4.1,hard"}),
			caps:        []*csi.VolumeCapability{mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER, "hard", "noatime")},
			wantSubDir:  "pvc-6",
			wantContext: map[string]string{"server": testServer, "share": testShare, "subDir": "pvc-6", "mountOptions": "nfsvers=4.1,hard,noatime"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			req := createReq(tc.volName, tc.params)
			req.CapacityRange = tc.capacity
			if tc.caps != nil {
				req.VolumeCapabilities = tc.caps
			}
			resp, err := e.d.CreateVolume(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			v := resp.GetVolume()
			if fi, err := os.Stat(e.exportPath(tc.wantSubDir)); err != nil || !fi.IsDir() {
				t.Fatalf("no directory %s on the export: %v", tc.wantSubDir, err)
			}
			if v.GetCapacityBytes() != tc.wantCap {
				t.Errorf("capacity %d, want %d", v.GetCapacityBytes(), tc.wantCap)
			}
			if tc.wantCap > 0 {
				// The node reports it as the total of a volume without quota.
				tc.wantContext[ContextCapacityBytes] = strconv.FormatInt(tc.wantCap, 10)
			}
			if !reflect.DeepEqual(v.GetVolumeContext(), tc.wantContext) {
				t.Errorf("volume context %v, want %v", v.GetVolumeContext(), tc.wantContext)
			}
			vol, err := nfs.ParseVolumeID(v.GetVolumeId())
			if err != nil {
				t.Fatalf("the driver's own ID does not parse: %v", err)
			}
			if vol.Server != testServer || vol.Share != testShare || vol.SubDir != tc.wantSubDir {
				t.Errorf("ID %s decodes to %+v", v.GetVolumeId(), vol)
			}

			// The same request again is the same volume.
			again, err := e.d.CreateVolume(context.Background(), req)
			if err != nil {
				t.Fatalf("repeated CreateVolume: %v", err)
			}
			if again.GetVolume().GetVolumeId() != v.GetVolumeId() || again.GetVolume().GetCapacityBytes() != v.GetCapacityBytes() {
				t.Errorf("repeated CreateVolume returned %v, first %v", again.GetVolume(), v)
			}
		})
	}
}

func TestCreateVolumeIdempotentAcrossRestart(t *testing.T) {
	e := newEnv(t)
	first := e.create(t, "pvc-1", baseParams())
	e.writeExport(t, "pvc-1/data", "keep")
	e.close()

	// A new controller (another replica, or this one restarted) only has
	// the on-share record to go by.
	d2, err := New(Config{Mode: ModeController, WorkDir: t.TempDir(), Mounter: e.fake, MountHelper: e.helper})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d2.Close)
	resp, err := d2.CreateVolume(context.Background(), createReq("pvc-1", baseParams()))
	if err != nil {
		t.Fatalf("CreateVolume after restart: %v", err)
	}
	if resp.GetVolume().GetVolumeId() != first.GetVolumeId() {
		t.Errorf("ID after restart %s, before %s", resp.GetVolume().GetVolumeId(), first.GetVolumeId())
	}
	if data, err := os.ReadFile(e.exportPath("pvc-1/data")); err != nil || string(data) != "keep" {
		t.Errorf("data after repeated CreateVolume: %q, %v", data, err)
	}

	// A different capacity is another volume, which the record also knows.
	req := createReq("pvc-1", baseParams())
	req.CapacityRange = &csi.CapacityRange{RequiredBytes: 2 * gib, LimitBytes: 2 * gib}
	_, err = d2.CreateVolume(context.Background(), req)
	wantCode(t, err, codes.AlreadyExists)
}

func TestCreateVolumeAlreadyExists(t *testing.T) {
	tmpl := func(pvc string) map[string]string {
		return withParams(map[string]string{"subDir": "shared/${pvc.metadata.namespace}", "csi.storage.k8s.io/pvc/name": pvc, "csi.storage.k8s.io/pvc/namespace": "ns"})
	}
	tests := []struct {
		name    string
		first   *csi.CreateVolumeRequest
		second  *csi.CreateVolumeRequest
		wantMsg []string
	}{
		{
			name:    "same name, other capacity",
			first:   withCapacity(createReq("pvc-1", baseParams()), gib, gib),
			second:  withCapacity(createReq("pvc-1", baseParams()), 2*gib, 2*gib),
			wantMsg: []string{"pvc-1", "capacity"},
		},
		{
			name:    "same name, other share parameters",
			first:   createReq("pvc-1", baseParams()),
			second:  createReq("pvc-1", withParams(map[string]string{"onDelete": "retain"})),
			wantMsg: []string{"pvc-1", "other parameters"},
		},
		{
			name:    "same name, other subDir",
			first:   createReq("pvc-1", baseParams()),
			second:  createReq("pvc-1", withParams(map[string]string{"subDir": "elsewhere"})),
			wantMsg: []string{"pvc-1", "already exists"},
		},
		{
			name:    "same name, other mountPermissions",
			first:   createReq("pvc-1", withParams(map[string]string{"mountPermissions": "0775"})),
			second:  createReq("pvc-1", withParams(map[string]string{"mountPermissions": "0777"})),
			wantMsg: []string{"mountPermissions"},
		},
		{
			name:    "two names, one subDir",
			first:   createReq("pvc-a", tmpl("a")),
			second:  createReq("pvc-b", tmpl("b")),
			wantMsg: []string{"shared/ns", `"pvc-a"`, "unique", "${pvc.metadata.namespace}/${pvc.metadata.name}"},
		},
		{
			name:    "two names, one fixed subDir",
			first:   createReq("pvc-a", withParams(map[string]string{"subDir": "fixed"})),
			second:  createReq("pvc-b", withParams(map[string]string{"subDir": "fixed"})),
			wantMsg: []string{"fixed", "unique"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			if _, err := e.d.CreateVolume(context.Background(), tc.first); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, e.export)
			_, err := e.d.CreateVolume(context.Background(), tc.second)
			wantCode(t, err, codes.AlreadyExists)
			wantMessageContains(t, err, tc.wantMsg...)
			if after := snapshot(t, e.export); !sameStrings(before, after) {
				t.Errorf("the export changed: before %q, after %q", before, after)
			}
			// The first volume is still there and still answers.
			if _, err := e.d.CreateVolume(context.Background(), tc.first); err != nil {
				t.Errorf("the first request again: %v", err)
			}
		})
	}
}

func withCapacity(r *csi.CreateVolumeRequest, required, limit int64) *csi.CreateVolumeRequest {
	r.CapacityRange = &csi.CapacityRange{RequiredBytes: required, LimitBytes: limit}
	return r
}

func TestCreateVolumeCapacityWithinRange(t *testing.T) {
	e := newEnv(t)
	first := e.create(t, "pvc-1", baseParams()) // 1 GiB
	// A range that still contains the existing capacity is the same volume.
	resp, err := e.d.CreateVolume(context.Background(), withCapacity(createReq("pvc-1", baseParams()), gib/2, 2*gib))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetVolume().GetCapacityBytes() != gib || resp.GetVolume().GetVolumeId() != first.GetVolumeId() {
		t.Errorf("got %v, want the first volume %v", resp.GetVolume(), first)
	}
}

func TestCreateVolumeMountPermissions(t *testing.T) {
	tests := []struct {
		perm string
		want os.FileMode
	}{
		{"0777", 0o777},
		{"0750", 0o750},
		{"2775", 0o775 | os.ModeSetgid},
		{"1777", 0o777 | os.ModeSticky},
	}
	for _, tc := range tests {
		t.Run(tc.perm, func(t *testing.T) {
			e := newEnv(t)
			e.create(t, "pvc-1", withParams(map[string]string{"mountPermissions": tc.perm}))
			fi, err := os.Stat(e.exportPath("pvc-1"))
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode() & (os.ModePerm | os.ModeSetgid | os.ModeSetuid | os.ModeSticky); got != tc.want {
				t.Errorf("mode %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCreateVolumeConcurrentSameName(t *testing.T) {
	e := newEnv(t)
	const n = 50
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.d.CreateVolume(context.Background(), createReq("pvc-1", baseParams()))
			errs[i] = err
			ids[i] = resp.GetVolume().GetVolumeId()
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("call %d: %v", i, errs[i])
		} else if ids[i] != ids[0] {
			t.Errorf("call %d: ID %s, call 0: %s", i, ids[i], ids[0])
		}
	}
	entries, err := os.ReadDir(e.export)
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, de := range entries {
		if de.Name() != nfs.MetadataDirName {
			dirs = append(dirs, de.Name())
		}
	}
	if len(dirs) != 1 || dirs[0] != "pvc-1" {
		t.Errorf("export holds %v, want exactly [pvc-1]", dirs)
	}
	if got := e.shareMounts(t); got != 1 {
		t.Errorf("%d share mounts, want 1", got)
	}
}

var archiveName = regexp.MustCompile(`^archived-pvc-1-\d{8}T\d{6}Z-[0-9a-f]{8}$`)

func TestDeleteVolumePolicies(t *testing.T) {
	tests := []struct {
		policy string
		check  func(t *testing.T, e *env)
	}{
		{"delete", func(t *testing.T, e *env) {
			if exists(e.exportPath("pvc-1")) {
				t.Error("pvc-1 still exists after delete")
			}
			if got := snapshot(t, e.export); len(got) != 1 { // just "."
				t.Errorf("export not empty: %q", got)
			}
		}},
		{"retain", func(t *testing.T, e *env) {
			if data, err := os.ReadFile(e.exportPath("pvc-1/sub/file")); err != nil || string(data) != "data" {
				t.Errorf("retained data: %q, %v", data, err)
			}
		}},
		{"archive", func(t *testing.T, e *env) {
			if exists(e.exportPath("pvc-1")) {
				t.Error("pvc-1 still exists after archiving")
			}
			entries, _ := os.ReadDir(e.export)
			var archives []string
			for _, de := range entries {
				if de.Name() != nfs.MetadataDirName {
					archives = append(archives, de.Name())
				}
			}
			if len(archives) != 1 || !archiveName.MatchString(archives[0]) {
				t.Fatalf("export holds %v, want one archived-pvc-1-<timestamp>-<hex>", archives)
			}
			if data, err := os.ReadFile(filepath.Join(e.export, archives[0], "sub/file")); err != nil || string(data) != "data" {
				t.Errorf("archived data: %q, %v", data, err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.policy, func(t *testing.T) {
			e := newEnv(t)
			v := e.create(t, "pvc-1", withParams(map[string]string{"onDelete": tc.policy}))
			e.writeExport(t, "pvc-1/sub/file", "data")
			if _, err := e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: v.GetVolumeId()}); err != nil {
				t.Fatal(err)
			}
			tc.check(t, e)
			// A second DeleteVolume succeeds and changes nothing.
			before := snapshot(t, e.export)
			if _, err := e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: v.GetVolumeId()}); err != nil {
				t.Fatalf("second DeleteVolume: %v", err)
			}
			if after := snapshot(t, e.export); !sameStrings(before, after) {
				t.Errorf("the second DeleteVolume changed the export: %q -> %q", before, after)
			}
			tc.check(t, e)
		})
	}
}

func TestDeleteVolumeArchiveOnDelete(t *testing.T) {
	e := newEnv(t)
	v := e.create(t, "pvc-1", withParams(map[string]string{"archiveOnDelete": "true"}))
	e.writeExport(t, "pvc-1/f", "x")
	if _, err := e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: v.GetVolumeId()}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(e.export)
	found := false
	for _, de := range entries {
		found = found || archiveName.MatchString(de.Name())
	}
	if !found || exists(e.exportPath("pvc-1")) {
		t.Errorf("want pvc-1 archived, export holds %v", entries)
	}
}

func TestDeleteVolumeNestedTemplateRemovesEmptyParents(t *testing.T) {
	e := newEnv(t)
	params := func(name string) map[string]string {
		return withParams(map[string]string{"subDir": "${pvc.metadata.namespace}/${pvc.metadata.name}", "csi.storage.k8s.io/pvc/name": name, "csi.storage.k8s.io/pvc/namespace": "ns"})
	}
	a := e.create(t, "pvc-a", params("a"))
	b := e.create(t, "pvc-b", params("b"))
	if !exists(e.exportPath("ns/a")) || !exists(e.exportPath("ns/b")) {
		t.Fatal("templated directories missing")
	}
	if _, err := e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: a.GetVolumeId()}); err != nil {
		t.Fatal(err)
	}
	if exists(e.exportPath("ns/a")) || !exists(e.exportPath("ns/b")) {
		t.Fatal("want ns/a gone and ns/b kept")
	}
	if _, err := e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: b.GetVolumeId()}); err != nil {
		t.Fatal(err)
	}
	if exists(e.exportPath("ns")) {
		t.Error("the empty parent ns was left behind")
	}
}

func TestDeleteVolumeIgnoresForeignIDs(t *testing.T) {
	tests := []struct {
		name string
		id   string
	}{
		{"csi-sanity's fake ID", "fake-vol-id"},
		{"other version", "v2#delete#10.0.0.1#/export#pvc-1#"},
		{"too few fields", "v1#delete#10.0.0.1#/export#pvc-1"},
		{"bad policy", "v1#shred#10.0.0.1#/export#pvc-1#"},
		{"bad escape", "v1#delete#10.0.0.1#/export#pvc%41#"},
		{"dot-dot subDir", "v1#delete#10.0.0.1#/export#../sibling#"},
		{"dot-dot inside subDir", "v1#delete#10.0.0.1#/export#pvc-1/../../sibling#"},
		{"absolute subDir", "v1#delete#10.0.0.1#/export#/sibling#"},
		{"dot-dot share", "v1#delete#10.0.0.1#/export/..#sibling#"},
		{"relative share", "v1#delete#10.0.0.1#export/../..#sibling#"},
		{"metadata dir", "v1#delete#10.0.0.1#/export#.nfs-csi#"},
		{"share root", "v1#delete#10.0.0.1#/export##"},
	}
	e := newEnv(t)
	e.create(t, "pvc-1", baseParams())
	e.writeExport(t, "pvc-1/f", "data")
	e.writeExport(t, "sibling/f", "mine")
	sibling := filepath.Join(e.base, "sibling")
	if err := os.MkdirAll(sibling, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sibling, "f"), []byte("outside"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, beforeOutside := snapshot(t, e.export), snapshot(t, sibling)
			if _, err := e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: tc.id}); err != nil {
				t.Fatalf("DeleteVolume(%q): %v, want success", tc.id, err)
			}
			if after := snapshot(t, e.export); !sameStrings(before, after) {
				t.Errorf("the export changed: %q -> %q", before, after)
			}
			if after := snapshot(t, sibling); !sameStrings(beforeOutside, after) {
				t.Errorf("the directory beside the export changed: %q -> %q", beforeOutside, after)
			}
		})
	}
}

func TestDeleteVolumeWithoutRecordLeavesDirectory(t *testing.T) {
	e := newEnv(t)
	e.writeExport(t, "static/data", "precious")
	e.writeExport(t, "a/b/data", "precious")
	for _, id := range []string{volumeIDFor("static", nfs.OnDeleteDelete), volumeIDFor("static", nfs.OnDeleteArchive), volumeIDFor("a/b", nfs.OnDeleteDelete)} {
		before := snapshot(t, e.export)
		if _, err := e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
			t.Fatalf("DeleteVolume(%s): %v", id, err)
		}
		if after := snapshot(t, e.export); !sameStrings(before, after) {
			t.Errorf("DeleteVolume(%s) changed the export: %q -> %q", id, before, after)
		}
	}
}

func TestDeleteVolumeBusyFile(t *testing.T) {
	e := newEnv(t)
	v := e.create(t, "pvc-1", baseParams())
	e.writeExport(t, "pvc-1/data", "x")
	e.writeExport(t, "pvc-1/dir/.nfs000000000000000100000001", "open elsewhere")
	_, err := e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: v.GetVolumeId()})
	wantCode(t, err, codes.FailedPrecondition)
	wantMessageContains(t, err, ".nfs000000000000000100000001", "pvc-1")
	if !exists(e.exportPath("pvc-1/dir/.nfs000000000000000100000001")) {
		t.Fatal("the busy file was removed")
	}
	if exists(e.exportPath("pvc-1/data")) {
		t.Error("the other files should already be gone")
	}

	if err := os.Remove(e.exportPath("pvc-1/dir/.nfs000000000000000100000001")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: v.GetVolumeId()}); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if exists(e.exportPath("pvc-1")) {
		t.Error("pvc-1 still exists after the retry")
	}
	// The name is free again.
	if _, err := e.d.CreateVolume(context.Background(), withCapacity(createReq("pvc-1", baseParams()), 5*gib, 0)); err != nil {
		t.Errorf("CreateVolume after delete: %v", err)
	}
}

func TestDeleteVolumeNoID(t *testing.T) {
	e := newEnv(t)
	_, err := e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{})
	wantCode(t, err, codes.InvalidArgument)
}

func TestValidateVolumeCapabilities(t *testing.T) {
	e := newEnv(t)
	v := e.create(t, "pvc-1", baseParams())
	id := v.GetVolumeId()
	tests := []struct {
		name        string
		req         *csi.ValidateVolumeCapabilitiesRequest
		wantCode    codes.Code
		wantConfirm bool
	}{
		{"no ID", &csi.ValidateVolumeCapabilitiesRequest{VolumeCapabilities: []*csi.VolumeCapability{rwo()}}, codes.InvalidArgument, false},
		{"no capabilities", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: id}, codes.InvalidArgument, false},
		{"malformed ID", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: "fake-vol-id", VolumeCapabilities: []*csi.VolumeCapability{rwo()}}, codes.NotFound, false},
		{"no such directory", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: volumeIDFor("nope", nfs.OnDeleteDelete), VolumeCapabilities: []*csi.VolumeCapability{rwo()}}, codes.NotFound, false},
		{"confirmed", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: id, VolumeContext: v.GetVolumeContext(), VolumeCapabilities: []*csi.VolumeCapability{
			rwo(), mountCap(csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER), mountCap(csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER),
		}, Parameters: baseParams()}, codes.OK, true},
		{"block", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: id, VolumeCapabilities: []*csi.VolumeCapability{blockCap()}}, codes.OK, false},
		{"block among others", &csi.ValidateVolumeCapabilitiesRequest{VolumeId: id, VolumeCapabilities: []*csi.VolumeCapability{rwo(), blockCap()}}, codes.OK, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := e.d.ValidateVolumeCapabilities(context.Background(), tc.req)
			wantCode(t, err, tc.wantCode)
			if err != nil {
				return
			}
			if tc.wantConfirm {
				c := resp.GetConfirmed()
				if c == nil {
					t.Fatalf("not confirmed: %q", resp.GetMessage())
				}
				if len(c.GetVolumeCapabilities()) != len(tc.req.GetVolumeCapabilities()) || !reflect.DeepEqual(c.GetVolumeContext(), tc.req.GetVolumeContext()) ||
					!reflect.DeepEqual(c.GetParameters(), tc.req.GetParameters()) {
					t.Errorf("confirmed %v, want the request's fields echoed", c)
				}
				return
			}
			if resp.GetConfirmed() != nil {
				t.Errorf("confirmed %v, want not confirmed", resp.GetConfirmed())
			}
			if resp.GetMessage() == "" {
				t.Error("no message says why")
			}
		})
	}
}

func TestControllerPublishVolume(t *testing.T) {
	e := newEnv(t)
	id := e.create(t, "pvc-1", baseParams()).GetVolumeId()
	tests := []struct {
		name string
		req  *csi.ControllerPublishVolumeRequest
		want codes.Code
	}{
		{"no volume ID", &csi.ControllerPublishVolumeRequest{NodeId: testNode, VolumeCapability: rwo()}, codes.InvalidArgument},
		{"no node ID", &csi.ControllerPublishVolumeRequest{VolumeId: id, VolumeCapability: rwo()}, codes.InvalidArgument},
		{"no capability", &csi.ControllerPublishVolumeRequest{VolumeId: id, NodeId: testNode}, codes.InvalidArgument},
		{"block", &csi.ControllerPublishVolumeRequest{VolumeId: id, NodeId: testNode, VolumeCapability: blockCap()}, codes.InvalidArgument},
		{"malformed volume", &csi.ControllerPublishVolumeRequest{VolumeId: "fake-vol-id", NodeId: testNode, VolumeCapability: rwo()}, codes.NotFound},
		// Attach does not look at the share; the node's mount reports a missing directory.
		{"valid ID, no directory", &csi.ControllerPublishVolumeRequest{VolumeId: volumeIDFor("nope", nfs.OnDeleteDelete), NodeId: testNode, VolumeCapability: rwo()}, codes.OK},
		{"unknown node", &csi.ControllerPublishVolumeRequest{VolumeId: id, NodeId: "node-2", VolumeCapability: rwo()}, codes.NotFound},
		{"this node", &csi.ControllerPublishVolumeRequest{VolumeId: id, NodeId: testNode, VolumeCapability: rwo()}, codes.OK},
		{"this node, read-only", &csi.ControllerPublishVolumeRequest{VolumeId: id, NodeId: testNode, VolumeCapability: rwo(), Readonly: true}, codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.d.ControllerPublishVolume(context.Background(), tc.req)
			wantCode(t, err, tc.want)
		})
	}
}

func TestControllerPublishVolumeControllerOnlyTrustsCO(t *testing.T) {
	e := newEnv(t)
	id := e.create(t, "pvc-1", baseParams()).GetVolumeId()
	e.close()
	d, err := New(Config{Mode: ModeController, WorkDir: t.TempDir(), Mounter: e.fake, MountHelper: e.helper})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	if _, err := d.ControllerPublishVolume(context.Background(), &csi.ControllerPublishVolumeRequest{VolumeId: id, NodeId: "any-node", VolumeCapability: rwo()}); err != nil {
		t.Errorf("a controller without a node service trusts the CO's node IDs: %v", err)
	}
}

func TestControllerUnpublishVolume(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name string
		req  *csi.ControllerUnpublishVolumeRequest
		want codes.Code
	}{
		{"no volume ID", &csi.ControllerUnpublishVolumeRequest{NodeId: testNode}, codes.InvalidArgument},
		{"unknown volume and node", &csi.ControllerUnpublishVolumeRequest{VolumeId: "fake-vol-id", NodeId: "node-9"}, codes.OK},
		{"valid ID, no directory", &csi.ControllerUnpublishVolumeRequest{VolumeId: volumeIDFor("nope", nfs.OnDeleteDelete), NodeId: testNode}, codes.OK},
		{"no node ID", &csi.ControllerUnpublishVolumeRequest{VolumeId: volumeIDFor("nope", nfs.OnDeleteDelete)}, codes.OK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.d.ControllerUnpublishVolume(context.Background(), tc.req)
			wantCode(t, err, tc.want)
		})
	}
}

func TestControllerGetVolumeAndHealth(t *testing.T) {
	e := newEnv(t)
	v := e.create(t, "pvc-1", baseParams())
	id := v.GetVolumeId()
	ctx := context.Background()

	got, err := e.d.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: id})
	if err != nil {
		t.Fatal(err)
	}
	// ControllerGetVolume does not read the record, so it has the context
	// without the capacity that CreateVolume adds for the node's stats.
	want := maps.Clone(v.GetVolumeContext())
	delete(want, ContextCapacityBytes)
	if got.GetVolume().GetVolumeId() != id || !reflect.DeepEqual(got.GetVolume().GetVolumeContext(), want) {
		t.Errorf("ControllerGetVolume = %v, want %v", got.GetVolume(), v)
	}
	h, err := e.d.ControllerGetVolumeHealth(ctx, &csi.ControllerGetVolumeHealthRequest{VolumeId: id})
	if err != nil {
		t.Fatal(err)
	}
	if h.GetVolumeHealth().GetVolumeId() != id || len(h.GetVolumeHealth().GetHealthStatuses()) != 0 {
		t.Errorf("healthy volume reports %v", h.GetVolumeHealth())
	}

	if err := os.RemoveAll(e.exportPath("pvc-1")); err != nil {
		t.Fatal(err)
	}
	_, err = e.d.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: id})
	wantCode(t, err, codes.NotFound)
	h, err = e.d.ControllerGetVolumeHealth(ctx, &csi.ControllerGetVolumeHealthRequest{VolumeId: id})
	if err != nil {
		t.Fatal(err)
	}
	st := h.GetVolumeHealth().GetHealthStatuses()
	if len(st) != 1 || st[0].GetStatus() != csi.VolumeHealthErrorType_INACCESSIBLE || st[0].GetReason() != "DirectoryMissing" {
		t.Fatalf("health after removing the directory: %v", st)
	}
	if st[0].GetMessage() == "" {
		t.Error("no health message")
	}

	for _, tc := range []struct {
		id   string
		want codes.Code
	}{{"", codes.InvalidArgument}, {"fake-vol-id", codes.NotFound}, {"v1#delete#10.0.0.1#/export#../x#", codes.NotFound}} {
		_, err := e.d.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: tc.id})
		wantCode(t, err, tc.want)
		_, err = e.d.ControllerGetVolumeHealth(ctx, &csi.ControllerGetVolumeHealthRequest{VolumeId: tc.id})
		wantCode(t, err, tc.want)
	}
}

func TestControllerGetVolumeHealthServerUnreachable(t *testing.T) {
	e := newEnv(t)
	// A share the fake server does not export: the mount fails.
	id := nfs.Volume{Server: testServer, Share: "/other", SubDir: "pvc-1", OnDelete: nfs.OnDeleteDelete}.ID()
	h, err := e.d.ControllerGetVolumeHealth(context.Background(), &csi.ControllerGetVolumeHealthRequest{VolumeId: id})
	if err != nil {
		t.Fatal(err)
	}
	st := h.GetVolumeHealth().GetHealthStatuses()
	if len(st) != 1 || st[0].GetStatus() != csi.VolumeHealthErrorType_INACCESSIBLE || st[0].GetReason() != "ServerUnreachable" {
		t.Fatalf("health of an unmountable share: %v", st)
	}
	_, err = e.d.ControllerGetVolume(context.Background(), &csi.ControllerGetVolumeRequest{VolumeId: id})
	wantCode(t, err, codes.PermissionDenied)
}

func TestCreateVolumeMountFailure(t *testing.T) {
	tests := []struct {
		output string
		want   codes.Code
		msg    []string
	}{
		{"mount.nfs: access denied by server while mounting 10.0.0.1:/export", codes.PermissionDenied, []string{testServer, testShare, testNode, "/etc/exports"}},
		{"mount.nfs: Connection refused", codes.Unavailable, []string{testServer}},
		{"mount.nfs: mounting 10.0.0.1:/export failed, reason given by server: No such file or directory", codes.NotFound, []string{testShare}},
		{"mount.nfs: requested NFS version or transport protocol is not supported", codes.FailedPrecondition, []string{"vers="}},
		{"mount.nfs: something odd", codes.Internal, []string{"something odd"}},
	}
	for _, tc := range tests {
		t.Run(tc.output, func(t *testing.T) {
			e := newEnv(t)
			e.fake.FailWith = tc.output
			_, err := e.d.CreateVolume(context.Background(), createReq("pvc-1", baseParams()))
			wantCode(t, err, tc.want)
			wantMessageContains(t, err, tc.msg...)
			e.fake.FailWith = ""
			if _, err := e.d.CreateVolume(context.Background(), createReq("pvc-1", baseParams())); err != nil {
				t.Errorf("after the server recovered: %v", err)
			}
		})
	}
}

func TestDeleteVolumeOnlyWithTheCreatingID(t *testing.T) {
	e := newEnv(t)
	v := e.create(t, "pvc-1", withParams(map[string]string{"onDelete": "retain"}))
	e.writeExport(t, "pvc-1/data", "precious")
	// Handles for the same directory that CreateVolume never issued: a
	// copied PV with its policy or mount options edited.
	for _, id := range []string{
		volumeIDFor("pvc-1", nfs.OnDeleteDelete),
		volumeIDFor("pvc-1", nfs.OnDeleteArchive),
		nfs.Volume{Server: testServer, Share: testShare, SubDir: "pvc-1", OnDelete: nfs.OnDeleteDelete, MountOptions: []string{"nfsvers=3"}}.ID(),
	} {
		before := snapshot(t, e.export)
		if _, err := e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: id}); err != nil {
			t.Fatalf("DeleteVolume(%s): %v", id, err)
		}
		if after := snapshot(t, e.export); !sameStrings(before, after) {
			t.Errorf("DeleteVolume(%s) of a volume created as %s changed the export: %q -> %q", id, v.GetVolumeId(), before, after)
		}
	}
	// The volume is still the driver's: CreateVolume answers for it.
	again, err := e.d.CreateVolume(context.Background(), createReq("pvc-1", withParams(map[string]string{"onDelete": "retain"})))
	if err != nil || again.GetVolume().GetVolumeId() != v.GetVolumeId() {
		t.Errorf("CreateVolume after the foreign deletes: %v, %v", again, err)
	}
}

func TestPreExistingDirectoryIsAdoptedNeverDeleted(t *testing.T) {
	for _, policy := range []string{"delete", "archive"} {
		t.Run(policy, func(t *testing.T) {
			e := newEnv(t)
			e.writeExport(t, "pvc-1/data", "was here first")
			v := e.create(t, "pvc-1", withParams(map[string]string{"onDelete": policy, "adoptExisting": "true"}))
			before := snapshot(t, e.export)
			if _, err := e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: v.GetVolumeId()}); err != nil {
				t.Fatal(err)
			}
			if after := snapshot(t, e.export); !sameStrings(before, after) {
				t.Errorf("DeleteVolume of an adopted directory changed the export: %q -> %q", before, after)
			}
		})
	}
}

func TestRetainedVolumeReusedBySameClaim(t *testing.T) {
	e := newEnv(t)
	params := withParams(map[string]string{"onDelete": "retain", "subDir": "${pvc.metadata.name}",
		"csi.storage.k8s.io/pvc/namespace": "team-a", "csi.storage.k8s.io/pvc/name": "data"})
	v := e.create(t, "pvc-1", params)
	e.writeExport(t, "data/db", "keep")
	if _, err := e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: v.GetVolumeId()}); err != nil {
		t.Fatal(err)
	}
	// A new volume of the same claim gets the retained directory back...
	params["onDelete"] = "delete"
	v2 := e.create(t, "pvc-2", params)
	if data, err := os.ReadFile(e.exportPath("data/db")); err != nil || string(data) != "keep" {
		t.Fatalf("retained data: %q, %v", data, err)
	}
	// ...and deleting it does not destroy what the first volume retained.
	if _, err := e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: v2.GetVolumeId()}); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(e.exportPath("data/db")); err != nil || string(data) != "keep" {
		t.Errorf("data of the adopted directory after delete: %q, %v", data, err)
	}
}

// With a subDir of ${pvc.metadata.name} alone (which the docs and an error
// message recommended), a claim in namespace team-b named like a retained
// volume of team-a used to be handed team-a's data.
func TestRegressionRetainedDataStaysWithItsClaim(t *testing.T) {
	e := newEnv(t)
	params := func(ns string) map[string]string {
		return withParams(map[string]string{"onDelete": "retain", "subDir": "${pvc.metadata.name}",
			"csi.storage.k8s.io/pvc/namespace": ns, "csi.storage.k8s.io/pvc/name": "data"})
	}
	v := e.create(t, "pvc-a", params("team-a"))
	e.writeExport(t, "data/secret", "team-a's")
	if _, err := e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: v.GetVolumeId()}); err != nil {
		t.Fatal(err)
	}
	_, err := e.d.CreateVolume(context.Background(), createReq("pvc-b", params("team-b")))
	wantCode(t, err, codes.AlreadyExists)
	wantMessageContains(t, err, "data", "team-a/data", "team-b/data", "pvc-a", "${pvc.metadata.namespace}/${pvc.metadata.name}")
	// Not even adoptExisting hands a tombstoned directory to another claim.
	p := params("team-b")
	p["adoptExisting"] = "true"
	_, err = e.d.CreateVolume(context.Background(), createReq("pvc-b", p))
	wantCode(t, err, codes.AlreadyExists)
}

// A directory the driver knows nothing about used to be adopted silently,
// data included. Now only a class with adoptExisting: "true" adopts it.
func TestRegressionUnknownDirectoryNeedsAdoptExisting(t *testing.T) {
	e := newEnv(t)
	e.writeExport(t, "pvc-1/data", "someone's")
	_, err := e.d.CreateVolume(context.Background(), createReq("pvc-1", baseParams()))
	wantCode(t, err, codes.AlreadyExists)
	wantMessageContains(t, err, "pvc-1", testServer+":"+testShare, `adoptExisting: "true"`)
	if got := e.records(t); len(got) != 0 {
		t.Errorf("a refused adoption left records: %q", got)
	}
	e.create(t, "pvc-1", withParams(map[string]string{"adoptExisting": "true"}))
}

func TestDeleteVolumeKeepsParentsItDidNotCreate(t *testing.T) {
	e := newEnv(t)
	e.mkdirExport(t, "ns") // made by an admin
	a := e.create(t, "pvc-a", withParams(map[string]string{
		"subDir": "${pvc.metadata.namespace}/${pvc.metadata.name}", "csi.storage.k8s.io/pvc/name": "a", "csi.storage.k8s.io/pvc/namespace": "ns",
	}))
	b := e.create(t, "pvc-b", withParams(map[string]string{
		"subDir": "${pvc.metadata.namespace}/x/${pvc.metadata.name}", "csi.storage.k8s.io/pvc/name": "b", "csi.storage.k8s.io/pvc/namespace": "ns",
	}))
	for _, v := range []*csi.Volume{a, b} {
		if _, err := e.d.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: v.GetVolumeId()}); err != nil {
			t.Fatal(err)
		}
	}
	if exists(e.exportPath("ns/a")) || exists(e.exportPath("ns/x")) {
		t.Error("the volumes or the parent the driver made are still there")
	}
	if !exists(e.exportPath("ns")) {
		t.Error("the admin's directory ns was removed")
	}
}

// A held lock and a caller's ended context used to be reported as an
// INACCESSIBLE "ServerUnreachable" entry: a false alarm on a healthy volume
// whenever a CreateVolume or DeleteVolume was in progress.
func TestRegressionControllerGetVolumeHealthNoFalseAlarm(t *testing.T) {
	e := newEnv(t)
	id := e.create(t, "pvc-1", baseParams()).GetVolumeId()
	unlock, err := e.d.locks.Lock(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	h, err := e.d.ControllerGetVolumeHealth(ctx, &csi.ControllerGetVolumeHealthRequest{VolumeId: id})
	if err == nil {
		t.Fatalf("health with the volume's lock held = %v, want Aborted", h.GetVolumeHealth().GetHealthStatuses())
	}
	wantCode(t, err, codes.Aborted)
	wantMessageContains(t, err, id, "retry")
	unlock()

	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	h, err = e.d.ControllerGetVolumeHealth(cancelled, &csi.ControllerGetVolumeHealthRequest{VolumeId: id})
	if err == nil {
		t.Fatalf("health with a cancelled call = %v, want an error", h.GetVolumeHealth().GetHealthStatuses())
	}

	h, err = e.d.ControllerGetVolumeHealth(context.Background(), &csi.ControllerGetVolumeHealthRequest{VolumeId: id})
	if err != nil || len(h.GetVolumeHealth().GetHealthStatuses()) != 0 {
		t.Errorf("health of a healthy volume = %v, %v; want no entries", h.GetVolumeHealth().GetHealthStatuses(), err)
	}
}

// The check for a repeated name with other parameters used an in-memory
// index of this process: after a controller restart, or on another replica,
// the same name with another subDir created a second volume.
func TestRegressionSameNameOtherSubDirAfterRestart(t *testing.T) {
	e := newEnv(t)
	e.create(t, "pvc-1", baseParams())
	restarted := e.controllerOf(t, "")
	_, err := restarted.CreateVolume(context.Background(), createReq("pvc-1", withParams(map[string]string{"subDir": "elsewhere"})))
	wantCode(t, err, codes.AlreadyExists)
	wantMessageContains(t, err, "pvc-1", "elsewhere", "already exists")
	if exists(e.exportPath("elsewhere")) {
		t.Error("a second directory was made for the name")
	}
	// Once the first is deleted, the name is free again.
	if _, err := restarted.DeleteVolume(context.Background(), &csi.DeleteVolumeRequest{VolumeId: volumeIDFor("pvc-1", nfs.OnDeleteDelete)}); err != nil {
		t.Fatal(err)
	}
	if _, err := restarted.CreateVolume(context.Background(), createReq("pvc-1", withParams(map[string]string{"subDir": "elsewhere"}))); err != nil {
		t.Fatalf("CreateVolume of the freed name: %v", err)
	}
}

// Two classes on one share with subDirs "k8s" and "k8s/${pvc.metadata.name}"
// used to put one volume inside the other; the second CreateVolume, in either
// order, is now AlreadyExists naming the first volume and its directory.
func TestRegressionNestedSubDirIsAlreadyExists(t *testing.T) {
	outer := withParams(map[string]string{"subDir": "k8s"})
	inner := withParams(map[string]string{"subDir": "k8s/${pvc.metadata.name}", "csi.storage.k8s.io/pvc/name": "data", "csi.storage.k8s.io/pvc/namespace": "ns"})
	for _, tc := range []struct {
		name          string
		first, second map[string]string
		firstDir      string
	}{
		{"outer first", outer, inner, "k8s"},
		{"inner first", inner, outer, "k8s/data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.create(t, "pvc-first", tc.first)
			_, err := e.d.CreateVolume(context.Background(), createReq("pvc-second", tc.second))
			wantCode(t, err, codes.AlreadyExists)
			wantMessageContains(t, err, "pvc-first", tc.firstDir, testServer+":"+testShare)
		})
	}
}
