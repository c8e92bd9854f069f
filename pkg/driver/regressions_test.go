package driver

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
)

// Two spellings of one StorageClass parameter used to be read in map order:
// the volume got one of the values at random. (This test used to return early
// on the very error it should assert.)
func TestRegressionDuplicateKeys(t *testing.T) {
	for range 20 {
		_, err := parseCreateParams(withParams(map[string]string{"subDir": "a", "subdir": "b"}))
		if err == nil {
			t.Fatal("subDir and subdir both given: accepted, want an error")
		}
		for _, key := range []string{`"subDir"`, `"subdir"`} {
			if !strings.Contains(err.Error(), key) {
				t.Errorf("error %q does not name %s", err, key)
			}
		}
	}
}

// The node used to read the volume context in map order: with both "server"
// and "Server" in a static PV, each publish mounted one of the two servers at
// random.
func TestRegressionNodeDuplicateVolumeContextKeys(t *testing.T) {
	e := newEnv(t)
	vc := map[string]string{"server": testServer, "Server": "10.9.9.9", "share": testShare}
	for range 20 {
		_, err := e.d.NodePublishVolume(context.Background(), &csi.NodePublishVolumeRequest{
			VolumeId: "static-1", TargetPath: filepath.Join(t.TempDir(), "mnt"), VolumeCapability: rwo(), VolumeContext: vc,
		})
		wantCode(t, err, codes.InvalidArgument)
		wantMessageContains(t, err, "static-1", `"Server"`, `"server"`)
	}
	if n := len(e.nodeMounts(t)); n != 0 {
		t.Errorf("%d mounts after refused publishes, want 0", n)
	}
}

// A second Driver.Close used to panic (it closed the share reaper's channel
// again); the plugin's shutdown path can call it twice.
func TestRegressionCloseTwice(t *testing.T) {
	e := newEnv(t)
	e.close()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("second Close panicked: %v", r)
		}
	}()
	e.d.Close()
}
