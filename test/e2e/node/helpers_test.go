//go:build e2e

package node

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/example/nfs-csi/test/e2e/framework"
)

// busyboxImage is the test pods' image (test/e2e/build-images.sh).
const busyboxImage = "localhost/nfs-csi-e2e/busybox:static"

func createNamespace(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	_, err := cluster.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return name
}

func createClaim(t *testing.T, ctx context.Context, ns, name, class string) {
	t.Helper()
	createSizedClaim(t, ctx, ns, name, class, "1Gi")
}

// createSizedClaim creates an RWO claim of size (a quantity) in class.
func createSizedClaim(t *testing.T, ctx context.Context, ns, name, class, size string) {
	t.Helper()
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: &class,
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceStorage: resource.MustParse(size),
			}},
		},
	}
	if _, err := cluster.Client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create PVC %s/%s: %v", ns, name, err)
	}
}

// shellPod is a pod on the real node running script in busybox's sh, with
// claim mounted at /data.
func shellPod(ns, name, claim, script string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"e2e-pod": name}},
		Spec: corev1.PodSpec{
			NodeName:                      nodeName,
			TerminationGracePeriodSeconds: ptr(int64(2)),
			Containers: []corev1.Container{{
				Name:            "sh",
				Image:           busyboxImage,
				ImagePullPolicy: corev1.PullNever,
				Command:         []string{"/busybox", "sh", "-c", script},
				VolumeMounts:    []corev1.VolumeMount{{Name: "data", MountPath: "/data"}},
			}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
			}}},
		},
	}
}

func ptr[T any](v T) *T { return &v }

// runPod creates pod and waits until it is Running and Ready.
func runPod(t *testing.T, ctx context.Context, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	created, err := cluster.Client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	start := time.Now()
	if _, err := cluster.WaitPodsReady(ctx, pod.Namespace, "e2e-pod="+pod.Name, 1, podsTimeout); err != nil {
		t.Fatal(err)
	}
	t.Logf("pod %s/%s Running and Ready in %.1fs", pod.Namespace, pod.Name, time.Since(start).Seconds())
	got, err := cluster.Client.CoreV1().Pods(pod.Namespace).Get(ctx, created.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// deletePod deletes the pod and waits until it is gone: the kubelet has
// unmounted its volumes and confirmed termination.
func deletePod(t *testing.T, ctx context.Context, pod *corev1.Pod) {
	t.Helper()
	if err := cluster.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	err := pollFor(ctx, 5*time.Minute, func() bool {
		_, err := cluster.Client.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	if err != nil {
		t.Fatalf("pod %s/%s not gone: %v\n%s", pod.Namespace, pod.Name, err, cluster.PodsReport(ctx, pod.Namespace, ""))
	}
}

// volumeTarget is where the kubelet has the pod's CSI volume pv mounted.
func volumeTarget(pod *corev1.Pod, pv string) string {
	return fmt.Sprintf("%s/pods/%s/volumes/kubernetes.io~csi/%s/mount", framework.KubeletDir, pod.UID, pv)
}

// mountedAt returns the source and file system type mounted at path in this
// mount namespace, the kubelet's, or "" when nothing is.
func mountedAt(t *testing.T, path string) (source, fstype string) {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, fld := range fields {
			if fld == "-" && i+2 < len(fields) && len(fields) > 4 && fields[4] == path {
				source, fstype = fields[i+2], fields[i+1]
			}
		}
	}
	return source, fstype
}

// boundPV waits for the claim to be Bound and returns its PV's name.
func boundPV(t *testing.T, ctx context.Context, ns, claim string) string {
	t.Helper()
	var pv string
	err := pollFor(ctx, 3*time.Minute, func() bool {
		pvc, err := cluster.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{})
		if err != nil || pvc.Status.Phase != corev1.ClaimBound {
			return false
		}
		pv = pvc.Spec.VolumeName
		return true
	})
	if err != nil {
		// The claim's events say why: csi-provisioner's ProvisioningFailed
		// carries the driver's error.
		t.Fatalf("claim %s/%s not Bound: %v; events: %s", ns, claim, err, cluster.EventSummary(ctx, ns, "PersistentVolumeClaim", claim))
	}
	return pv
}

// waitFile waits until path on the server exists and holds want.
func waitFile(t *testing.T, ctx context.Context, path, want string) {
	t.Helper()
	var got string
	err := pollFor(ctx, 2*time.Minute, func() bool {
		b, err := os.ReadFile(path)
		got = string(b)
		return err == nil && strings.TrimSpace(got) == want
	})
	if err != nil {
		t.Fatalf("%s on the export = %q, want %q: %v", path, got, want, err)
	}
}
