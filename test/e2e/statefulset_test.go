//go:build e2e

package e2e

import (
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Scenario 2: a real StatefulSet's volumeClaimTemplates (the seed's "web"
// with template "www") make claims www-web-0..2; each gets its own
// directory and goes Bound. This is the case that stayed Pending with
// "selfLink was empty" under nfs-client-provisioner on 1.20+.
func TestStatefulSetClaims(t *testing.T) {
	ctx := testContext(t)
	ns := namespace(t, ctx, bed, "web")
	replicas := int32(3)
	class := "nfs-delete"
	labels := map[string]string{"app": "nginx"}
	tmpl := claim(ns, "www", class, corev1.ReadWriteMany)
	tmpl.Namespace = ""
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &replicas,
			ServiceName: "nginx",
			// No scheduler runs here, so pods stay Pending; Parallel makes
			// the controller create every pod and claim without waiting.
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "nginx", Image: "registry.invalid/nginx:never-pulled",
					VolumeMounts: []corev1.VolumeMount{{Name: "www", MountPath: "/usr/share/nginx/html"}},
				}}},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{*tmpl},
		},
	}
	c := bed.Cluster.Client
	if _, err := c.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pvs := map[string]string{}
	for i := range 3 {
		name := fmt.Sprintf("www-web-%d", i)
		pv, err := bed.WaitClaimBound(ctx, ns, name, bindTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if other, dup := pvs[pv.Name]; dup {
			t.Errorf("claims %s and %s share PV %s", other, name, pv.Name)
		}
		pvs[pv.Name] = name
		if got := pv.Spec.CSI.VolumeAttributes["subDir"]; got != "web/"+name {
			t.Errorf("claim %s: subDir %q, want web/%s", name, got, name)
		}
		if !isDir(onExport("web/" + name)) {
			t.Errorf("claim %s: no directory web/%s on the export", name, name)
		}
	}

	// Clean up as an admin would: the StatefulSet, then its claims (which
	// StatefulSets keep by default).
	if err := c.AppsV1().StatefulSets(ns).Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		_ = bed.ForceDeletePod(ctx, ns, fmt.Sprintf("web-%d", i))
	}
	for pv, claimName := range pvs {
		deleteClaim(t, ctx, bed, ns, claimName)
		if err := bed.WaitPVGone(ctx, pv, deleteTimeout); err != nil {
			t.Error(err)
		}
	}
	if isDir(onExport("web")) {
		t.Errorf("the template's parent directory web/ outlived its last volume")
	}
}
