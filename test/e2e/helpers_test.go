//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/example/nfs-csi/test/e2e/framework"
)

const (
	bindTimeout   = 2 * time.Minute
	deleteTimeout = 2 * time.Minute
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// namespace creates a namespace for one test in b's cluster.
func namespace(t *testing.T, ctx context.Context, b *framework.Bed, name string) string {
	t.Helper()
	if err := b.CreateNamespace(ctx, name); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return name
}

func claim(ns, name, class string, mode corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{mode},
			StorageClassName: &class,
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceStorage: resource.MustParse("1Gi"),
			}},
		},
	}
}

func createClaim(t *testing.T, ctx context.Context, b *framework.Bed, pvc *corev1.PersistentVolumeClaim) {
	t.Helper()
	if _, err := b.Cluster.Client.CoreV1().PersistentVolumeClaims(pvc.Namespace).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create PVC %s/%s: %v", pvc.Namespace, pvc.Name, err)
	}
}

func deleteClaim(t *testing.T, ctx context.Context, b *framework.Bed, ns, name string) {
	t.Helper()
	if err := b.Cluster.Client.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete PVC %s/%s: %v", ns, name, err)
	}
}

// provision creates a claim and waits until it is Bound.
func provision(t *testing.T, ctx context.Context, b *framework.Bed, pvc *corev1.PersistentVolumeClaim) *corev1.PersistentVolume {
	t.Helper()
	createClaim(t, ctx, b, pvc)
	pv, err := b.WaitClaimBound(ctx, pvc.Namespace, pvc.Name, bindTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return pv
}

func runPod(t *testing.T, ctx context.Context, n *framework.Node, ns, name string, claims ...string) *framework.Pod {
	t.Helper()
	p, err := n.RunPod(ctx, ns, name, claims...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func stopPod(t *testing.T, ctx context.Context, n *framework.Node, p *framework.Pod) {
	t.Helper()
	if err := n.StopPod(ctx, p); err != nil {
		t.Fatalf("stop pod %s/%s: %v", p.Namespace, p.Name, err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatalf("write through the mount: %v", err)
	}
}

// onExport is a path on the NFS server's side of the export.
func onExport(rel string) string { return filepath.Join(exportDir, rel) }

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return string(b)
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// exportTree lists every path under the export, with its type and size, so
// two snapshots compare equal only when nothing changed.
func exportTree(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(exportDir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(exportDir, p)
		out = append(out, rel+" "+fi.Mode().String()+" "+strconv.FormatInt(fi.Size(), 10))
		return nil
	})
	if err != nil {
		t.Fatalf("walk export: %v", err)
	}
	sort.Strings(out)
	return out
}

// archivesOf lists the archive directories of base under dir on the export.
func archivesOf(t *testing.T, dir, base string) []string {
	t.Helper()
	entries, err := os.ReadDir(onExport(dir))
	if err != nil {
		t.Fatalf("read %s: %v", onExport(dir), err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "archived-"+base+"-") {
			out = append(out, e.Name())
		}
	}
	return out
}
