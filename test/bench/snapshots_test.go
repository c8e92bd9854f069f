package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/example/nfs-csi/pkg/nfs"
)

func TestMeasureFloors(t *testing.T) {
	scratch := t.TempDir()
	src := filepath.Join(scratch, "src")
	if err := writeRandomTree(src, 30, 300<<10, 1); err != nil {
		t.Fatal(err)
	}
	f, err := measureFloors(src, scratch)
	if err != nil {
		t.Fatal(err)
	}
	if f.copyS <= 0 || f.tarCzfS <= 0 || f.tarXzfS <= 0 {
		t.Errorf("floors %+v: a copy that ran took no time", f)
	}
	// The host's file system may or may not reflink: either a time or why not.
	if (f.reflinkS > 0) == (f.reflinkError != "") {
		t.Errorf("cp --reflink=always: %v s and error %q, want exactly one", f.reflinkS, f.reflinkError)
	}
	if entries, _ := os.ReadDir(scratch); len(entries) != 1 || entries[0].Name() != "src" {
		t.Errorf("after the floors the scratch directory holds %v, want only the source", entries)
	}
	files, size, _ := treeStats(t, src)
	if files != 30 || size != 300<<10 {
		t.Errorf("the source changed: %d files of %d bytes", files, size)
	}
}

func TestMeasureFloorsOfAMissingTree(t *testing.T) {
	if _, err := measureFloors(filepath.Join(t.TempDir(), "none"), t.TempDir()); err == nil || !strings.Contains(err.Error(), "cp -a --reflink=never") {
		t.Errorf("floors of a missing tree: %v, want the failed cp named", err)
	}
}

func TestSnapshotMethod(t *testing.T) {
	share := t.TempDir()
	snap := nfs.Snapshot{Server: "127.0.0.1", Share: "/", Name: "snap-1"}
	if got := snapshotMethod(share, snap.ID()); !strings.HasPrefix(got, "unknown: ") {
		t.Errorf("the method of a snapshot without a record: %q, want unknown and why", got)
	}
	if err := os.MkdirAll(filepath.Join(share, nfs.SnapshotDir), 0o755); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(nfs.SnapshotRecord{ID: snap.ID(), Ready: true, Method: nfs.CopyClone})
	if err := os.WriteFile(filepath.Join(share, nfs.SnapshotDir, snap.Key()+".json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := snapshotMethod(share, snap.ID()); got != string(nfs.CopyClone) {
		t.Errorf("snapshotMethod = %q, want %q from its record", got, nfs.CopyClone)
	}
	if got := snapshotMethod(share, "not-an-id"); !strings.HasPrefix(got, "unknown: ") {
		t.Errorf("the method of a bad ID: %q, want unknown and why", got)
	}
}

func TestRatio(t *testing.T) {
	for _, tc := range []struct{ a, b, want float64 }{{3, 2, 1.5}, {3, 0, 0}, {0, 2, 0}} {
		if got := ratio(tc.a, tc.b); got != tc.want {
			t.Errorf("ratio(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestCopyTableVerdicts(t *testing.T) {
	rs := []copyResult{
		{Export: "tmpfs", Files: 2000, MiB: 200, SnapshotMethod: "copy_file_range", SnapshotVsCopy: 1.2, RestoreVsCopy: 1.8, BareReflinkError: "cp -a --reflink=always: exit status 1: not supported"},
		{Export: "xfs", SnapshotMethod: "clone", SnapshotVsReflink: 1.4, RestoreVsReflink: 1.6, SnapshotVsCopy: 0.5, SnapshotVsTarCzf: 5, RestoreVsTarXzf: 3},
	}
	var b strings.Builder
	printCopyTable(&b, rs)
	out := b.String()
	for _, want := range []string{
		"snapshot slowdown vs cp --reflink=always", "[xfs met]",
		"restore slowdown vs cp --reflink=always", "[xfs MISSED]",
		"snapshot slowdown vs cp --reflink=never", "[tmpfs met]",
		"tmpfs: cp --reflink=always did not reflink: cp -a --reflink=always: exit status 1: not supported",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the table lacks %q:\n%s", want, out)
		}
	}
	// The tmpfs target does not judge the XFS column, though it has a figure.
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "snapshot slowdown vs cp --reflink=never") && strings.Contains(line, "xfs ") {
			t.Errorf("the tmpfs target judged the XFS column: %s", line)
		}
		if strings.Contains(line, "restore speedup vs tar xzf") && !strings.Contains(line, "[xfs MISSED]") {
			t.Errorf("3x against a 4x target: %s", line)
		}
	}
	b.Reset()
	printCopyTable(&b, nil)
	if b.Len() != 0 {
		t.Errorf("no rows printed %q", b.String())
	}
}

func TestCapacityTableVerdicts(t *testing.T) {
	var b strings.Builder
	printCapacityTable(&b, &capacityResult{Export: "xfs", NFSVersion: "4.2", StatsFiles: 100000, EnforcementSlowdown: 2.5,
		QuotaStatsVsStatfs: 1.3, WalkSeconds: 20, StatsWhileWalkMaxMs: 150, StatsQuotaSrc: "quota", StatsWalkSrc: "walk"})
	out := b.String()
	for _, want := range []string{"slowdown from enforcement", "<= 2x [MISSED]", "slowdown of quota stats p50 vs statfs", "<= 2x [met]",
		"never waits for the walk (< 1/10 of it) [met]", "source quota", "source walk", "100000 files"} {
		if !strings.Contains(out, want) {
			t.Errorf("the table lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	printCapacityTable(&b, &capacityResult{WalkSeconds: -1, StatsWhileWalkMaxMs: 5})
	if !strings.Contains(b.String(), "never waits for the walk (< 1/10 of it) [MISSED]") {
		t.Errorf("a walk that never ended passed the target:\n%s", b.String())
	}
}
