package packaging

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// The quota agent's DaemonSet: absent by default, and with agent.enabled
// the systemd unit's command line, capabilities and files, on the NFS
// server nodes.
func TestAgentDaemonSet(t *testing.T) {
	if r := defaultRender(t); r.has("DaemonSet", "nfs-csi-agent") {
		t.Error("the default render has an agent DaemonSet; agent.enabled is false")
	}
	r := fullRender(t)
	spec := get[*appsv1.DaemonSet](t, r, "DaemonSet", "storage-nfs-agent").Spec.Template.Spec
	a := container(t, spec, "agent")
	if a.Image != "registry.internal.example/nfs-csi:v0.1.0-rc1" {
		t.Errorf("agent image %s, want the driver's", a.Image)
	}
	want := []string{"agent", "--root=/srv/nfs", "--root=/=/export/v4root", "--listen=10.0.0.5:9820",
		"--project-ids=5000000-5999999", "--tls-cert=/etc/nfs-csi-agent/tls.crt", "--tls-key=/etc/nfs-csi-agent/tls.key",
		"--client-ca=/etc/nfs-csi-agent/ca.crt", "--v=5", "--v=4"}
	if !slices.Equal(a.Args, want) {
		t.Errorf("agent args\n%q\nwant\n%q", a.Args, want)
	}
	if p := port(a, "agent"); p != 9820 {
		t.Errorf("agent container port %d, want 9820 (from listen)", p)
	}
	if a.ReadinessProbe == nil || a.ReadinessProbe.TCPSocket == nil || a.ReadinessProbe.TCPSocket.Port.String() != "agent" {
		t.Errorf("agent readinessProbe %+v, want a TCP connect to the agent port", a.ReadinessProbe)
	}
	sc := a.SecurityContext
	if sc == nil || sc.Privileged != nil && *sc.Privileged || sc.Capabilities == nil ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) ||
		!slices.Equal(sc.Capabilities.Add, []corev1.Capability{"SYS_ADMIN", "FOWNER", "DAC_OVERRIDE", "DAC_READ_SEARCH"}) {
		t.Errorf("agent securityContext %+v, want not privileged, ALL dropped, the unit's four capabilities added", sc)
	}
	if v := volume(t, spec, "tls"); v.Secret == nil || v.Secret.SecretName != "nfs-agent-tls" {
		t.Errorf("volume tls %+v, want Secret nfs-agent-tls", v.VolumeSource)
	}
	for i, path := range []string{"/srv/nfs", "/export/v4root"} {
		name := []string{"root-0", "root-1"}[i]
		if v := volume(t, spec, name); v.HostPath == nil || v.HostPath.Path != path {
			t.Errorf("volume %s %+v, want hostPath %s", name, v.VolumeSource, path)
		}
		if m := mount(t, a, name); m.MountPath != path || m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationHostToContainer {
			t.Errorf("mount %s %+v, want %s with HostToContainer", name, m, path)
		}
	}
	if !spec.HostNetwork {
		t.Error("the agent is not in the host network: controllers reach it at the node's address")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the agent pods get an API token")
	}
	if spec.NodeSelector["example.io/nfs-server"] != "true" {
		t.Errorf("agent nodeSelector %v", spec.NodeSelector)
	}
}

// agent.enabled without roots or a Secret is refused by the schema.
func TestAgentSchema(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  []string
		msg  string
	}{
		{"no roots", []string{"agent.enabled=true", "agent.tlsSecret=s"}, "at '/agent/roots'"},
		{"no Secret", []string{"agent.enabled=true", "agent.roots[0]=/srv/nfs"}, "at '/agent/tlsSecret'"},
		{"relative root", []string{"agent.enabled=true", "agent.tlsSecret=s", "agent.roots[0]=srv/nfs"}, "at '/agent/roots/0'"},
		{"listen without a port", []string{"agent.listen=10.0.0.5"}, "at '/agent/listen'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := renderChart("x", "default", opts{set: tc.set})
			if err == nil {
				t.Fatal("helm template succeeded")
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("helm template: %v\nwant the message %q", err, tc.msg)
			}
		})
	}
}
