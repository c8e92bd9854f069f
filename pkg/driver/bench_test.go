package driver

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"

	"k8s.io/klog/v2"
)

// BenchmarkCreateDelete is the in-process CreateVolume+DeleteVolume cycle of
// make bench on a local directory, for counting the system calls a cycle
// makes (each file system call is at most one NFS round trip on a real
// share): strace -f -c the test binary with -test.benchtime=Nx for two values
// of N and divide the difference by the difference of N.
func BenchmarkCreateDelete(b *testing.B) {
	klog.SetOutput(io.Discard)
	klog.LogToStderr(false)
	defer klog.LogToStderr(true)
	for _, bc := range []struct{ name, template string }{
		{"top-level", ""},
		{"ns-pvc", "${pvc.metadata.namespace}/${pvc.metadata.name}"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			e := newEnv(b)
			ctx := context.Background()
			params := map[string]string{ParamServer: testServer, ParamShare: testShare}
			if bc.template != "" {
				params[ParamSubDir] = bc.template
				params["csi.storage.k8s.io/pvc/namespace"] = "ns"
			}
			cycle := func(i int) {
				name := fmt.Sprintf("pvc-%d", i)
				if bc.template != "" {
					params["csi.storage.k8s.io/pvc/name"] = name
				}
				resp, err := e.d.CreateVolume(ctx, createReq(name, params))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := e.d.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: resp.GetVolume().GetVolumeId()}); err != nil {
					b.Fatal(err)
				}
			}
			// The first cycle mounts the share and creates the records
			// directory; a second volume keeps ns/ in place, as in a
			// namespace with other claims.
			cycle(-1)
			if bc.template != "" {
				params["csi.storage.k8s.io/pvc/name"] = "pvc-stays"
				if _, err := e.d.CreateVolume(ctx, createReq("pvc-stays", params)); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := range b.N {
				cycle(i)
			}
		})
	}
}
