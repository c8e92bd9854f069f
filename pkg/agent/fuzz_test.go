package agent

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/example/nfs-csi/pkg/nfs"
)

// FuzzDecodeRequest: any body is decoded without a panic, and one that is
// accepted names a directory strictly below the share, outside the
// driver's metadata.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"share":"/export","subDir":"a","volumeID":"v","capacityBytes":1}`,
		`{"share":"/","subDir":"a/b","volumeID":"v"}`,
		`{"share":"/export","subDir":"../etc","volumeID":"v","capacityBytes":1}`,
		`{"share":"/export","subDir":".nfs-csi/volumes","volumeID":"v"}`,
		`{"share":"/export","subDir":"","volumeID":"v"}`,
		`{"share":"/export"}`,
		`{"share":"/export","subDir":"a","volumeID":"v","capacityBytes":-1}`,
		`{"share":"/export","subDir":"a","volumeID":"v"} {}`,
		`{"share":"/export","subDir":"a","volumeID":"v","extra":1}`,
		`[]`, `null`, ``,
	} {
		for _, p := range []string{PathSet, PathGet, PathClear, PathCapacity} {
			f.Add(p, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, p string, body []byte) {
		req, err := DecodeRequest(p, body)
		if err != nil {
			if code(err) != CodeInvalidArgument {
				t.Fatalf("refusal %v is not InvalidArgument", err)
			}
			return
		}
		if p == PathCapacity {
			if req.SubDir != "" {
				t.Fatalf("capacity request with subDir %q accepted", req.SubDir)
			}
			return
		}
		full := path.Join("/root-of-share", req.SubDir)
		meta := "/root-of-share/" + nfs.MetadataDirName
		if !strings.HasPrefix(full, "/root-of-share/") || full == meta || strings.HasPrefix(full, meta+"/") {
			t.Fatalf("accepted subDir %q resolves to %s, not strictly below the share and outside its metadata", req.SubDir, full)
		}
		if req.VolumeID == "" {
			t.Fatalf("accepted a request without a volume ID: %+v", req)
		}
		if p == PathSet && req.CapacityBytes <= 0 {
			t.Fatalf("accepted a set of %d bytes", req.CapacityBytes)
		}
	})
}

// FuzzSetPaths: whatever share and subDir a request names, the agent
// changes project IDs only of recorded directories strictly below its root
// (never the root, the records, or what a symlink points at).
func FuzzSetPaths(f *testing.F) {
	for _, s := range []string{"a", "link/x", "link", ".nfs-csi", ".nfs-csi/projects", "a/../link/x", "", "norecord", "a/b"} {
		f.Add("/export", s)
	}
	f.Add("/", "a")
	f.Add("/outside", "a")
	f.Fuzz(func(t *testing.T, share, subDir string) {
		b := newBed(t, IDRange{Min: 1, Max: 50})
		outside := t.TempDir()
		if err := os.Symlink(outside, filepath.Join(b.root, "link")); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(outside, "x"), 0o755); err != nil {
			t.Fatal(err)
		}
		b.record("link/x", nfs.Record{VolumeID: "vol-link/x"})
		b.volume("a", nfs.Record{})
		_ = os.MkdirAll(filepath.Join(b.root, "norecord"), 0o755)
		body := []byte(`{"share":` + quote(share) + `,"subDir":` + quote(subDir) + `,"volumeID":` + quote("vol-"+subDir) + `,"capacityBytes":4096}`)
		req, err := DecodeRequest(PathSet, body)
		if err != nil {
			return
		}
		_, _ = b.agent.Set(req)
		for _, p := range b.quotas.Changed {
			rel, ok := strings.CutPrefix(p, b.root+"/")
			if !ok || rel == "" || strings.HasPrefix(rel, nfs.MetadataDirName) {
				t.Fatalf("request %s changed the project of %s, outside the volume directories below %s", body, p, b.root)
			}
			if rel != "a" {
				t.Fatalf("request %s changed %s, which has no record", body, p)
			}
		}
		if got := listTree(t, outside); got != outside+"\n"+filepath.Join(outside, "x") {
			t.Fatalf("request %s changed the symlink's target: %s", body, got)
		}
	})
}

func quote(s string) string {
	b := strings.Builder{}
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteString(`\` + string(r))
		case r < 0x20:
			b.WriteString(`\u00` + string("0123456789abcdef"[r>>4]) + string("0123456789abcdef"[r&15]))
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
