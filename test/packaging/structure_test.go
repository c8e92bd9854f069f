package packaging

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
)

const driverName = "nfs.csi.example.io"

func TestDefaultCSIDriver(t *testing.T) {
	d := get[*storagev1.CSIDriver](t, defaultRender(t), "CSIDriver", driverName).Spec
	if d.AttachRequired == nil || !*d.AttachRequired {
		t.Error("attachRequired is not true")
	}
	if d.PodInfoOnMount == nil || *d.PodInfoOnMount {
		t.Error("podInfoOnMount is not false")
	}
	if d.FSGroupPolicy == nil || *d.FSGroupPolicy != storagev1.FileFSGroupPolicy {
		t.Errorf("fsGroupPolicy %v, want File", d.FSGroupPolicy)
	}
	if !slices.Equal(d.VolumeLifecycleModes, []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent}) {
		t.Errorf("volumeLifecycleModes %v, want Persistent only (inline volumes off)", d.VolumeLifecycleModes)
	}
}

func TestDefaultController(t *testing.T) {
	r := defaultRender(t)
	dep := get[*appsv1.Deployment](t, r, "Deployment", "nfs-csi-controller")
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Errorf("controller replicas %v, want 2", dep.Spec.Replicas)
	}
	spec := dep.Spec.Template.Spec
	drv := container(t, spec, "nfs-csi")
	wantArg(t, drv, "--mode=controller")
	if sc := drv.SecurityContext; sc == nil || sc.Privileged == nil || !*sc.Privileged {
		t.Error("the controller's driver is not privileged")
	}
	if v := volume(t, spec, "workdir"); v.EmptyDir == nil {
		t.Errorf("workdir is %+v, want an emptyDir", v.VolumeSource)
	}
	prov := container(t, spec, "csi-provisioner")
	for _, a := range []string{"--extra-create-metadata", "--leader-election", "--timeout=60s"} {
		wantArg(t, prov, a)
	}
	att := container(t, spec, "csi-attacher")
	wantArg(t, att, "--leader-election")
	for c, image := range map[string]string{
		"csi-provisioner": "registry.k8s.io/sig-storage/csi-provisioner:v6.3.0",
		"csi-attacher":    "registry.k8s.io/sig-storage/csi-attacher:v4.13.0",
		"liveness-probe":  "registry.k8s.io/sig-storage/livenessprobe:v2.19.0",
		"nfs-csi":         "registry.example.io/nfs-csi/nfs-csi:v0.1.0", // appVersion
	} {
		if got := container(t, spec, c).Image; got != image {
			t.Errorf("container %s image %s, want %s", c, got, image)
		}
	}
	wantArg(t, container(t, spec, "liveness-probe"), "--http-endpoint=:29652")
	if p := port(drv, "healthz"); p != 29652 {
		t.Errorf("controller driver's healthz port %d, want 29652", p)
	}
	if lp := drv.LivenessProbe; lp == nil || lp.HTTPGet == nil || lp.HTTPGet.Path != "/healthz" || lp.HTTPGet.Port.String() != "healthz" {
		t.Errorf("controller driver's livenessProbe %+v, want an httpGet of /healthz on port healthz", lp)
	}
	wantStartupProbe(t, "controller", drv)
}

// wantStartupProbe checks that c, a driver container, waits up to the
// default startupProbeSeconds (300) for livenessprobe, the pod's last
// container, to answer before its liveness probe can restart it.
func wantStartupProbe(t *testing.T, what string, c corev1.Container) {
	t.Helper()
	sp := c.StartupProbe
	if sp == nil || sp.HTTPGet == nil || sp.HTTPGet.Path != "/healthz" || sp.HTTPGet.Port.String() != "healthz" {
		t.Fatalf("%s driver's startupProbe %+v, want an httpGet of /healthz on port healthz", what, sp)
	}
	if got := sp.PeriodSeconds * sp.FailureThreshold; got != 300 {
		t.Errorf("%s driver's startupProbe allows %d s (period %d × failureThreshold %d), want startupProbeSeconds' default 300",
			what, got, sp.PeriodSeconds, sp.FailureThreshold)
	}
}

func TestDefaultNode(t *testing.T) {
	r := defaultRender(t)
	spec := get[*appsv1.DaemonSet](t, r, "DaemonSet", "nfs-csi-node").Spec.Template.Spec
	drv := container(t, spec, "nfs-csi")
	wantArg(t, drv, "--mode=node")
	wantArg(t, drv, "--nodeid=$(NODE_ID)")
	var nodeID *corev1.EnvVar
	for i := range drv.Env {
		if drv.Env[i].Name == "NODE_ID" {
			nodeID = &drv.Env[i]
		}
	}
	if nodeID == nil || nodeID.ValueFrom == nil || nodeID.ValueFrom.FieldRef == nil || nodeID.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("NODE_ID is %+v, want the downward API's spec.nodeName", nodeID)
	}
	if sc := drv.SecurityContext; sc == nil || sc.Privileged == nil || !*sc.Privileged {
		t.Error("the node driver is not privileged")
	}
	m := mount(t, drv, "kubelet-dir")
	if m.MountPath != "/var/lib/kubelet" || m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationBidirectional {
		t.Errorf("kubelet-dir mount %+v, want /var/lib/kubelet with Bidirectional propagation", m)
	}
	for name, path := range map[string]string{"kubelet-dir": "/var/lib/kubelet", "registration-dir": "/var/lib/kubelet/plugins_registry"} {
		if v := volume(t, spec, name); v.HostPath == nil || v.HostPath.Path != path {
			t.Errorf("volume %s is %+v, want hostPath %s", name, v.VolumeSource, path)
		}
	}
	reg := container(t, spec, "node-driver-registrar")
	wantArg(t, reg, "--kubelet-registration-path=/var/lib/kubelet/plugins/"+driverName+"/csi.sock")
	if reg.Image != "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.17.0" {
		t.Errorf("node-driver-registrar image %s", reg.Image)
	}
	wantArg(t, container(t, spec, "liveness-probe"), "--http-endpoint=:29653")
	if lp := drv.LivenessProbe; lp == nil || lp.HTTPGet == nil || lp.HTTPGet.Path != "/healthz" || lp.HTTPGet.Port.String() != "healthz" {
		t.Errorf("node driver's livenessProbe %+v", lp)
	}
	wantStartupProbe(t, "node", drv)
	if !slices.ContainsFunc(spec.Tolerations, func(tol corev1.Toleration) bool {
		return tol.Key == "" && tol.Operator == corev1.TolerationOpExists && tol.Effect == ""
	}) {
		t.Errorf("the node DaemonSet does not tolerate every taint: %+v", spec.Tolerations)
	}
	if !spec.HostNetwork {
		t.Error("the node DaemonSet is not in the host network")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the node pods get an API token")
	}
}

// anyWildcard reports whether a rule uses "*" in any field, however spelt
// in the YAML.
func anyWildcard(rule rbacv1.PolicyRule) bool {
	for _, list := range [][]string{rule.APIGroups, rule.Resources, rule.Verbs, rule.ResourceNames, rule.NonResourceURLs} {
		for _, v := range list {
			if strings.Contains(v, "*") {
				return true
			}
		}
	}
	return false
}

func TestDefaultRBAC(t *testing.T) {
	r := defaultRender(t)
	wantRule(t, r, "ClusterRole/nfs-csi-controller", rbacv1.PolicyRule{APIGroups: []string{"storage.k8s.io"}, Resources: []string{"csinodes"}, Verbs: []string{"get"}})
	wantRule(t, r, "ClusterRole/nfs-csi-attacher", rbacv1.PolicyRule{APIGroups: []string{"storage.k8s.io"}, Resources: []string{"volumeattachments/status"}, Verbs: []string{"patch"}})
	wantRule(t, r, "Role/nfs-csi-leader-election", rbacv1.PolicyRule{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"},
		Verbs: []string{"get", "list", "watch", "create", "update", "delete"}})
	for _, rend := range []*rendered{r, fullRender(t)} {
		for role, rs := range rules(rend) {
			for _, rule := range rs {
				if anyWildcard(rule) {
					t.Errorf(`%s has a rule with "*": %+v`, role, rule)
				}
			}
		}
		if strings.Contains(rend.Manifest, `"*"`) {
			t.Error(`"*" appears in the rendered YAML`)
		}
	}
	for _, o := range r.Objects {
		var subjects []rbacv1.Subject
		switch b := o.Obj.(type) {
		case *rbacv1.ClusterRoleBinding:
			subjects = b.Subjects
		case *rbacv1.RoleBinding:
			subjects = b.Subjects
		}
		for _, s := range subjects {
			if s.Kind == "ServiceAccount" && s.Name == "nfs-csi-node" {
				t.Errorf("%s/%s binds a role to the node ServiceAccount", o.Kind, o.Name)
			}
		}
	}
	if got := rulesOn(r, "secrets"); len(got) > 0 {
		t.Errorf("rules on secrets: %q", got)
	}
	if got := r.ofKind("StorageClass"); len(got) > 0 {
		t.Errorf("default values create StorageClasses: %d", len(got))
	}
}

func TestFullValues(t *testing.T) {
	r := fullRender(t)
	d := get[*storagev1.CSIDriver](t, r, "CSIDriver", "nfs2.csi.example.io").Spec
	if !slices.Equal(d.VolumeLifecycleModes, []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent, storagev1.VolumeLifecycleEphemeral}) {
		t.Errorf("volumeLifecycleModes %v, want Persistent,Ephemeral", d.VolumeLifecycleModes)
	}
	sc := get[*storagev1.StorageClass](t, r, "StorageClass", "nfs-csi")
	for k, v := range map[string]string{"subDir": "${pvc.metadata.namespace}/${pvc.metadata.name}", "mountPermissions": "0777", "archiveOnDelete": "true"} {
		if sc.Parameters[k] != v {
			t.Errorf("StorageClass nfs-csi parameter %s = %q, want %q", k, sc.Parameters[k], v)
		}
	}
	if sc.Annotations["storageclass.kubernetes.io/is-default-class"] != "true" {
		t.Error("StorageClass nfs-csi is not the default")
	}
	for _, o := range r.ofKind("StorageClass") {
		if o.Name != "nfs-csi" && o.Obj.(*storagev1.StorageClass).Annotations["storageclass.kubernetes.io/is-default-class"] != "" {
			t.Errorf("StorageClass %s is a default too", o.Name)
		}
	}
	if strings.Join(sc.MountOptions, ",") != "nfsvers=4.1,hard,timeo=600" {
		t.Errorf("mountOptions %q", sc.MountOptions)
	}
	if sc.Provisioner != "nfs2.csi.example.io" {
		t.Errorf("provisioner %s", sc.Provisioner)
	}
	node := get[*appsv1.DaemonSet](t, r, "DaemonSet", "storage-nfs-node").Spec.Template.Spec
	kubelet := "/var/snap/microk8s/common/var/lib/kubelet"
	if m := mount(t, container(t, node, "nfs-csi"), "kubelet-dir"); m.MountPath != kubelet || m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationBidirectional {
		t.Errorf("kubelet-dir mount %+v", m)
	}
	reg := container(t, node, "node-driver-registrar")
	wantArg(t, reg, "--kubelet-registration-path="+kubelet+"/plugins/nfs2.csi.example.io/csi.sock")
	if reg.Image != "registry.internal.example/riscv64/csi-node-driver-registrar:v2.17.0-riscv64" {
		t.Errorf("self-built registrar image %s", reg.Image)
	}
	ctrl := get[*appsv1.Deployment](t, r, "Deployment", "storage-nfs-controller").Spec.Template.Spec
	wantArg(t, container(t, ctrl, "csi-provisioner"), "--worker-threads=50")
	if !ctrl.HostNetwork {
		t.Error("full: the controller is not in the host network")
	}
	if ctrl.ServiceAccountName != "nfs-ctrl-sa" {
		t.Errorf("full: controller ServiceAccount %s", ctrl.ServiceAccountName)
	}
}

func TestAttachRequiredFalse(t *testing.T) {
	r := mustRender(t, "nfs-csi", "default", opts{set: []string{"csiDriver.attachRequired=false"}})
	if d := get[*storagev1.CSIDriver](t, r, "CSIDriver", driverName); d.Spec.AttachRequired == nil || *d.Spec.AttachRequired {
		t.Error("attachRequired is not false")
	}
	for _, o := range r.Objects {
		if spec, ok := podSpec(o); ok && hasContainer(spec, "csi-attacher") {
			t.Errorf("%s/%s has a csi-attacher container", o.Kind, o.Name)
		}
		if o.Kind == "ClusterRole" && strings.HasSuffix(o.Name, "-attacher") {
			t.Errorf("ClusterRole %s exists", o.Name)
		}
	}
}

func TestClusterID(t *testing.T) {
	autoRule := rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get"}, ResourceNames: []string{"kube-system"}}
	for _, tc := range []struct {
		name, release, arg string
		o                  opts
		namespaces         bool
	}{
		{"default: --cluster-id=auto, get on the kube-system Namespace only", "nfs-csi", "--cluster-id=auto", opts{}, true},
		{"clusterID empty: --cluster-id=auto", "nfs-csi", "--cluster-id=auto", opts{setString: []string{"clusterID="}}, true},
		{"clusterID=abc: no access to namespaces", "nfs-csi", "--cluster-id=abc", opts{set: []string{"clusterID=abc"}}, false},
		{"full: clusterID from the values, no access to namespaces", "r1", "--cluster-id=prod-east-1", opts{files: []string{fullValues}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := "kube-system"
			if tc.release == "r1" {
				ns = "storage"
			}
			r := mustRender(t, tc.release, ns, tc.o)
			ctrl := "nfs-csi-controller"
			if tc.release == "r1" {
				ctrl = "storage-nfs-controller"
			}
			want := "Deployment/" + ctrl + "/nfs-csi: " + tc.arg
			if got := argsWith(r, "cluster-id"); !slices.Equal(got, []string{want}) {
				t.Errorf("arguments with cluster-id: %q; want only %q (no other container, node DaemonSet or sidecar)", got, want)
			}
			got := rulesOn(r, "namespaces")
			if tc.namespaces {
				wantRule(t, r, "ClusterRole/nfs-csi-controller", autoRule)
				if len(got) != 1 {
					t.Errorf("rules on namespaces: %q; want only get on kube-system", got)
				}
				for _, rs := range rules(r) {
					for _, rule := range rs {
						if slices.Contains(rule.Resources, "namespaces") && len(rule.ResourceNames) == 0 {
							t.Errorf("a rule on namespaces without resourceNames: %+v", rule)
						}
					}
				}
			} else if len(got) > 0 {
				t.Errorf("rules on namespaces: %q", got)
			}
		})
	}
}

func TestShareMountOptions(t *testing.T) {
	if got := argsWith(defaultRender(t), "share-mount-options"); len(got) > 0 {
		t.Errorf("default rendering: %q", got)
	}
	want := `Deployment/storage-nfs-controller/nfs-csi: --share-mount-options=[{"mountOptions":["nfsvers=4.1","hard"],"server":"nfs.example.internal","share":"/srv/nfs"},{"mountOptions":[],"server":"[fd00::5]","share":"/"}]`
	if got := argsWith(fullRender(t), "share-mount-options"); !slices.Equal(got, []string{want}) {
		t.Errorf("full: %q; want only the controller's driver with\n%s", got, want)
	}
}

func TestMetrics(t *testing.T) {
	r := defaultRender(t)
	ctrl := container(t, get[*appsv1.Deployment](t, r, "Deployment", "nfs-csi-controller").Spec.Template.Spec, "nfs-csi")
	node := container(t, get[*appsv1.DaemonSet](t, r, "DaemonSet", "nfs-csi-node").Spec.Template.Spec, "nfs-csi")
	wantArg(t, ctrl, "--metrics-address=:29654")
	wantArg(t, node, "--metrics-address=:29655")
	if port(ctrl, "metrics") != 29654 || port(node, "metrics") != 29655 {
		t.Errorf("metrics ports %d, %d; want 29654, 29655", port(ctrl, "metrics"), port(node, "metrics"))
	}
	for _, a := range argsWith(r, "metrics-address") {
		if !strings.Contains(a, "/nfs-csi: ") {
			t.Errorf("a sidecar gets --metrics-address: %s", a)
		}
	}
	if len(r.ofKind("ServiceMonitor")) > 0 {
		t.Error("default rendering has a ServiceMonitor")
	}

	sm := mustRender(t, "nfs-csi", "kube-system", opts{set: []string{"metrics.serviceMonitor.enabled=true", "node.metricsPort=0", "metrics.serviceMonitor.labels.release=prom"}})
	if !sm.has("Service", "nfs-csi-controller-metrics") {
		t.Error("no Service for the controller's metrics port")
	}
	if sm.has("Service", "nfs-csi-node-metrics") {
		t.Error("node.metricsPort=0, and a node metrics Service exists")
	}
	for _, a := range argsWith(sm, "metrics-address") {
		if strings.HasPrefix(a, "DaemonSet/") {
			t.Errorf("node.metricsPort=0, and %s", a)
		}
	}
	mons := sm.ofKind("ServiceMonitor")
	if len(mons) != 1 {
		t.Fatalf("%d ServiceMonitors", len(mons))
	}
	m := *mons[0].Obj.(*map[string]any)
	labels, _ := dig(m, "metadata", "labels").(map[string]any)
	endpoints, _ := dig(m, "spec", "endpoints").([]any)
	selector, _ := dig(m, "spec", "selector", "matchLabels").(map[string]any)
	firstPort := ""
	if len(endpoints) > 0 {
		firstPort, _ = dig(endpoints[0].(map[string]any), "port").(string)
	}
	if labels["release"] != "prom" || firstPort != "metrics" || selector["nfs-csi.example.io/metrics"] != "true" {
		t.Errorf("ServiceMonitor labels %v, first endpoint port %q, selector %v", labels, firstPort, selector)
	}
}

func dig(m map[string]any, keys ...string) any {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

// TestDefaultSnapshotter: the csi-snapshotter sidecar is on by default, with
// leader election, its pinned image, the one status rule it needs, and no
// VolumeSnapshotClass unless asked for.
func TestDefaultSnapshotter(t *testing.T) {
	r := defaultRender(t)
	spec := get[*appsv1.Deployment](t, r, "Deployment", "nfs-csi-controller").Spec.Template.Spec
	snap := container(t, spec, "csi-snapshotter")
	wantArg(t, snap, "--leader-election")
	if want := "registry.k8s.io/sig-storage/csi-snapshotter:v8.7.0"; snap.Image != want {
		t.Errorf("csi-snapshotter image %s, want %s", snap.Image, want)
	}
	wantRule(t, r, "ClusterRole/nfs-csi-snapshotter", rbacv1.PolicyRule{
		APIGroups: []string{"snapshot.storage.k8s.io"},
		Resources: []string{"volumesnapshotcontents/status"},
		Verbs:     []string{"update", "patch"},
	})
	if n := len(r.ofKind("VolumeSnapshotClass")); n != 0 {
		t.Errorf("default values render %d VolumeSnapshotClasses, want none", n)
	}
}

// TestDefaultResizer: the csi-resizer sidecar runs by default (expansion
// raises enforced quotas and records other sizes), with leader election and
// its pinned image.
func TestDefaultResizer(t *testing.T) {
	r := defaultRender(t)
	spec := get[*appsv1.Deployment](t, r, "Deployment", "nfs-csi-controller").Spec.Template.Spec
	rs := container(t, spec, "csi-resizer")
	wantArg(t, rs, "--leader-election")
	if want := "registry.k8s.io/sig-storage/csi-resizer:v2.3.0"; rs.Image != want {
		t.Errorf("csi-resizer image %s, want %s", rs.Image, want)
	}
	if !r.has("ClusterRole", "nfs-csi-resizer") || !r.has("ClusterRoleBinding", "nfs-csi-resizer") {
		t.Errorf("no nfs-csi-resizer ClusterRole and binding: %s", r.names())
	}
}
