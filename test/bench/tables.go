package main

import (
	"fmt"
	"io"
	"strings"
)

// cell formats a figure with its unit, or "n/a" for one not measured.
func cell(v float64, unit string) string {
	if v <= 0 {
		return "n/a"
	}
	if v < 1 {
		return fmt.Sprintf("%.2f%s", v, unit)
	}
	return fmt.Sprintf("%.1f%s", v, unit)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// printCopyTable prints the snapshot rows, one column per export. A target
// applies to the exports it names: the reflink targets to xfs, the plain
// copy target to tmpfs.
func printCopyTable(w io.Writer, rs []copyResult) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-52s", fmt.Sprintf("snapshots (NFSv4.2, %d files, %d MiB)", rs[0].Files, rs[0].MiB))
	for _, r := range rs {
		fmt.Fprintf(w, " %16s", r.Export)
	}
	fmt.Fprintln(w, "   target")
	row := func(label, unit string, get func(copyResult) float64, target string, applies func(copyResult) bool, ok func(copyResult) bool) {
		fmt.Fprintf(w, "%-52s", label)
		var verdicts []string
		for _, r := range rs {
			fmt.Fprintf(w, " %16s", cell(get(r), unit))
			if ok != nil && applies(r) && get(r) > 0 {
				verdicts = append(verdicts, r.Export+" "+verdict(ok(r)))
			}
		}
		fmt.Fprintf(w, "   %s", target)
		if len(verdicts) > 0 {
			fmt.Fprintf(w, " [%s]", strings.Join(verdicts, ", "))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%-52s", "copy method the snapshot's record names")
	for _, r := range rs {
		fmt.Fprintf(w, " %16s", r.SnapshotMethod)
	}
	fmt.Fprintln(w)
	isXFS := func(r copyResult) bool { return r.Export == "xfs" }
	isTmpfs := func(r copyResult) bool { return r.Export == "tmpfs" }
	row("CreateSnapshot until ready_to_use", "s", func(r copyResult) float64 { return r.SnapshotS }, "", nil, nil)
	row("restore: CreateVolume from the snapshot", "s", func(r copyResult) float64 { return r.RestoreS }, "", nil, nil)
	row("clone: CreateVolume from the volume", "s", func(r copyResult) float64 { return r.CloneS }, "", nil, nil)
	row("bare cp -a --reflink=always, same mount", "s", func(r copyResult) float64 { return r.BareReflinkS }, "", nil, nil)
	row("bare cp -a --reflink=never, same mount", "s", func(r copyResult) float64 { return r.BareCopyS }, "", nil, nil)
	row("bare tar czf (the reference driver's snapshot)", "s", func(r copyResult) float64 { return r.TarCzfS }, "", nil, nil)
	row("bare tar xzf (its restore)", "s", func(r copyResult) float64 { return r.TarXzfS }, "", nil, nil)
	row("  snapshot slowdown vs cp --reflink=always", "x", func(r copyResult) float64 { return r.SnapshotVsReflink }, "<= 1.5x on xfs", isXFS, func(r copyResult) bool { return r.SnapshotVsReflink <= 1.5 })
	row("  restore slowdown vs cp --reflink=always", "x", func(r copyResult) float64 { return r.RestoreVsReflink }, "<= 1.5x on xfs", isXFS, func(r copyResult) bool { return r.RestoreVsReflink <= 1.5 })
	row("  clone slowdown vs cp --reflink=always", "x", func(r copyResult) float64 { return r.CloneVsReflink }, "", nil, nil)
	row("  snapshot slowdown vs cp --reflink=never", "x", func(r copyResult) float64 { return r.SnapshotVsCopy }, "<= 1.5x on tmpfs", isTmpfs, func(r copyResult) bool { return r.SnapshotVsCopy <= 1.5 })
	row("  restore slowdown vs cp --reflink=never", "x", func(r copyResult) float64 { return r.RestoreVsCopy }, "<= 1.5x on tmpfs", isTmpfs, func(r copyResult) bool { return r.RestoreVsCopy <= 1.5 })
	row("  clone slowdown vs cp --reflink=never", "x", func(r copyResult) float64 { return r.CloneVsCopy }, "", nil, nil)
	row("  snapshot speedup vs tar czf", "x", func(r copyResult) float64 { return r.SnapshotVsTarCzf }, ">= 4x on xfs", isXFS, func(r copyResult) bool { return r.SnapshotVsTarCzf >= 4 })
	row("  restore speedup vs tar xzf", "x", func(r copyResult) float64 { return r.RestoreVsTarXzf }, ">= 4x on xfs", isXFS, func(r copyResult) bool { return r.RestoreVsTarXzf >= 4 })
	for _, r := range rs {
		if r.BareReflinkError != "" {
			fmt.Fprintf(w, "%s: cp --reflink=always did not reflink: %s\n", r.Export, r.BareReflinkError)
		}
	}
}

// printCapacityTable prints the enforced-capacity rows.
func printCapacityTable(w io.Writer, r *capacityResult) {
	if r == nil {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%-56s %12s   %s\n", fmt.Sprintf("capacity (%s prjquota, NFSv%s, agent over mTLS)", r.Export, r.NFSVersion), "", "target")
	row := func(label string, v float64, unit, target string, ok *bool) {
		fmt.Fprintf(w, "%-56s %12s   %s", label, cell(v, unit), target)
		if ok != nil {
			fmt.Fprintf(w, " [%s]", verdict(*ok))
		}
		fmt.Fprintln(w)
	}
	is := func(b bool) *bool { return &b }
	row("CreateVolume+DeleteVolume, enforced, sequential", r.CreateDeleteEnforcedPerSec, "/s", "", nil)
	row("CreateVolume+DeleteVolume, not enforced, sequential", r.CreateDeletePlainPerSec, "/s", "", nil)
	row("  slowdown from enforcement", r.EnforcementSlowdown, "x", "<= 2x", is(r.EnforcementSlowdown <= 2))
	row("ControllerExpandVolume p50, enforced", r.ExpandEnforcedP50Ms, "ms", "", nil)
	row("ControllerExpandVolume p50, not enforced (record only)", r.ExpandPlainP50Ms, "ms", "", nil)
	fmt.Fprintf(w, "NodeGetVolumeStats on a volume of %d files:\n", r.StatsFiles)
	row("  quota (statfs) p50, source "+r.StatsQuotaSrc, r.StatsQuotaP50Ms, "ms", "", nil)
	row("  quota (statfs) p99", r.StatsQuotaP99Ms, "ms", "", nil)
	row("  bare statfs of the same mount p50", r.BareStatfsP50Ms, "ms", "", nil)
	row("  bare statfs of the same mount p99", r.BareStatfsP99Ms, "ms", "", nil)
	row("  slowdown of quota stats p50 vs statfs", r.QuotaStatsVsStatfs, "x", "<= 2x", is(r.QuotaStatsVsStatfs <= 2))
	row("  first call without quota (starts the walk)", r.StatsFirstCallMs, "ms", "", nil)
	row("  slowest call while the walk ran", r.StatsWhileWalkMaxMs, "ms", "never waits for the walk (< 1/10 of it)",
		is(r.WalkSeconds > 0 && r.StatsWhileWalkMaxMs < r.WalkSeconds*100))
	row("  the walk, until a call answers from it", r.WalkSeconds, "s", "", nil)
	row("  cached walk p50, source "+r.StatsWalkSrc, r.StatsWalkP50Ms, "ms", "", nil)
	row("  cached walk p99", r.StatsWalkP99Ms, "ms", "", nil)
	row("  bare du -s of the same tree", r.BareDuSeconds, "s", "", nil)
	row("  slowdown of cached-walk stats p50 vs statfs", r.WalkStatsVsStatfs, "x", "", nil)
}
