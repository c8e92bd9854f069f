//go:build e2e

package e2e

import (
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Scenario 7: a StorageClass mistake reaches the user as a ProvisioningFailed
// event on the claim that names the problem, and nothing on the export moves.
func TestBadStorageClass(t *testing.T) {
	ctx := testContext(t)
	c := bed.Cluster.Client
	before := exportTree(t)
	ns := namespace(t, ctx, bed, "bad")
	cases := []struct {
		class  string
		params map[string]string
		want   []string
	}{
		{"typo-parameter", map[string]string{"server": "127.0.0.1", "share": "/run/export", "onDelet": "retain"},
			[]string{"InvalidArgument", "onDelet"}},
		{"escaping-subdir", map[string]string{"server": "127.0.0.1", "share": "/run/export", "subDir": "../${pvc.metadata.name}"},
			[]string{"InvalidArgument", "subDir", ".."}},
	}
	for _, tc := range cases {
		sc := &storagev1.StorageClass{
			ObjectMeta:  metav1.ObjectMeta{Name: tc.class},
			Provisioner: bed.DriverName,
			Parameters:  tc.params,
		}
		if _, err := c.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		createClaim(t, ctx, bed, claim(ns, tc.class, tc.class, corev1.ReadWriteOnce))
	}
	for _, tc := range cases {
		ev, err := bed.WaitEvent(ctx, ns, "PersistentVolumeClaim", tc.class, "ProvisioningFailed", time.Minute)
		if err != nil {
			t.Error(err)
			continue
		}
		t.Logf("%s: ProvisioningFailed: %s", tc.class, ev.Message)
		for _, w := range tc.want {
			if !strings.Contains(ev.Message, w) {
				t.Errorf("%s: event %q does not name %q", tc.class, ev.Message, w)
			}
		}
		pvc, err := c.CoreV1().PersistentVolumeClaims(ns).Get(ctx, tc.class, metav1.GetOptions{})
		if err != nil || pvc.Status.Phase != corev1.ClaimPending {
			t.Errorf("%s: claim phase %v (err %v), want Pending", tc.class, pvc.Status.Phase, err)
		}
	}
	if after := exportTree(t); !slices.Equal(before, after) {
		t.Errorf("the export changed:\nbefore %v\nafter  %v", before, after)
	}
	for _, tc := range cases {
		deleteClaim(t, ctx, bed, ns, tc.class)
		_ = c.StorageV1().StorageClasses().Delete(ctx, tc.class, metav1.DeleteOptions{})
	}
}
