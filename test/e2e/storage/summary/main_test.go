package main

import (
	"regexp"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	const junit = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="Kubernetes e2e suite">
<testcase name="[It] [sig-storage] External Storage [Driver: nfs.csi.example.io] [Testpattern: Dynamic PV (default fs)] provisioning should provision storage with mount options" status="passed" time="40"></testcase>
<testcase name="[It] [sig-storage] External Storage [Driver: nfs.csi.example.io] [Testpattern: Dynamic PV (default fs)] provisioning should fail" status="failed" time="3"><failure message="boom&#xA;detail" type="failed">x</failure></testcase>
<testcase name="[It] [sig-storage] External Storage [Driver: nfs.csi.example.io] [Testpattern: Pre-provisioned PV (default fs)] volumes should store data" status="skipped" time="0"><skipped message="skipped - Driver nfs does not support volume type"></skipped></testcase>
<testcase name="[It] [sig-storage] External Storage [Driver: nfs.csi.example.io] [Testpattern: Dynamic Snapshot (delete policy)] snapshottable should create" status="skipped" time="0"><skipped message="skipped"></skipped></testcase>
<testcase name="[SynchronizedBeforeSuite]" status="failed" time="1"><failure message="setup"></failure></testcase>
</testsuite></testsuites>`
	all := map[key]*counts{}
	other := 0
	if err := summarize(strings.NewReader(junit), regexp.MustCompile("^(provisioning|volumes)$"), all, &other); err != nil {
		t.Fatal(err)
	}
	dyn := all[key{"provisioning", "Dynamic PV (default fs)"}]
	if dyn == nil || dyn.Passed != 1 || dyn.Failed != 1 || dyn.Skipped != 0 {
		t.Fatalf("provisioning, Dynamic PV: %+v", dyn)
	}
	if len(dyn.Failures) != 1 || dyn.Failures[0] != "should fail (3s): boom" {
		t.Errorf("failures: %q", dyn.Failures)
	}
	pre := all[key{"volumes", "Pre-provisioned PV (default fs)"}]
	if pre == nil || pre.Skipped != 1 || pre.SkipReasons["Driver nfs does not support volume type"] != 1 {
		t.Errorf("volumes, Pre-provisioned PV: %+v", pre)
	}
	if len(all) != 2 {
		t.Errorf("%d suite and pattern pairs, want 2 (snapshottable is not asked for): %v", len(all), all)
	}
	if other != 1 {
		t.Errorf("failures outside the driver's tests: %d, want 1", other)
	}
}
