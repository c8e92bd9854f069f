//go:build e2e

package e2e

import (
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// cycle provisions claim name in ns with class, writes content through a
// pod on node-a, deletes the pod and the claim, and waits for the PV to go.
func cycle(t *testing.T, ns, name, class, content string) {
	t.Helper()
	ctx := testContext(t)
	pv := provision(t, ctx, bed, claim(ns, name, class, corev1.ReadWriteOnce))
	pod := runPod(t, ctx, nodeA, ns, name+"-writer", name)
	writeFile(t, filepath.Join(pod.Mounts[name], "data.txt"), content)
	stopPod(t, ctx, nodeA, pod)
	if err := bed.WaitDetached(ctx, pv.Name, nodeA.Name, deleteTimeout); err != nil {
		t.Fatal(err)
	}
	deleteClaim(t, ctx, bed, ns, name)
	if err := bed.WaitPVGone(ctx, pv.Name, deleteTimeout); err != nil {
		t.Fatal(err)
	}
}

// Scenario 4: the class's onDelete decides what happens to the directory
// when its claim goes, and archives never collide.
func TestDeletePolicies(t *testing.T) {
	t.Run("delete", func(t *testing.T) {
		ns := namespace(t, testContext(t), bed, "policy-delete")
		cycle(t, ns, "data", "nfs-delete", "delete me\n")
		if isDir(onExport("policy-delete/data")) {
			t.Errorf("onDelete=delete kept policy-delete/data")
		}
		if isDir(onExport("policy-delete")) {
			t.Errorf("the parent policy-delete/ that the template made outlived its last volume")
		}
	})
	t.Run("retain", func(t *testing.T) {
		ns := namespace(t, testContext(t), bed, "policy-retain")
		cycle(t, ns, "data", "nfs-retain", "keep me\n")
		if got := readFile(t, onExport("policy-retain/data/data.txt")); got != "keep me\n" {
			t.Errorf("retained data.txt has %q", got)
		}
	})
	t.Run("archive twice", func(t *testing.T) {
		ns := namespace(t, testContext(t), bed, "policy-archive")
		cycle(t, ns, "data", "nfs-archive", "first\n")
		first := archivesOf(t, "policy-archive", "data")
		if len(first) != 1 {
			t.Fatalf("after one archive cycle: archives %v, want 1", first)
		}
		cycle(t, ns, "data", "nfs-archive", "second\n")
		all := archivesOf(t, "policy-archive", "data")
		if len(all) != 2 {
			t.Fatalf("after two archive cycles of the same claim name: archives %v, want 2", all)
		}
		contents := map[string]bool{}
		for _, a := range all {
			contents[readFile(t, onExport(filepath.Join("policy-archive", a, "data.txt")))] = true
		}
		if !contents["first\n"] || !contents["second\n"] {
			t.Errorf("archives %v hold %v, want both cycles' data", all, contents)
		}
		if isDir(onExport("policy-archive/data")) {
			t.Errorf("policy-archive/data still exists besides its archives")
		}
	})
}
