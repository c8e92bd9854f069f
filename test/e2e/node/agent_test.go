//go:build e2e

package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/example/nfs-csi/pkg/agent"
	"github.com/example/nfs-csi/pkg/agent/agenttest"
	"github.com/example/nfs-csi/pkg/driver"
	"github.com/example/nfs-csi/test/e2e/framework"
)

// The quota agent as the chart runs it on this node (values.yaml: agent.*,
// StorageClass nfs-quota), on the guest's XFS export with project quotas
// (test/uml/init.sh, UML_NODE=1).
const (
	quotaExport   = "/run/export-quota"
	quotaClass    = "nfs-quota"
	agentAddress  = framework.NodeNFSAddr + ":9820"
	agentSelector = "app.kubernetes.io/instance=" + release + ",app.kubernetes.io/component=agent"
	// The Secrets values.yaml names: the agent's server certificate with
	// the CA of its clients, and the controller's client certificate.
	agentServerSecret = "nfs-csi-agent-tls"
	agentClientSecret = "nfs-csi-agent-client"
	// The chart's default agent.projectIDs.
	agentIDMin, agentIDMax = 3000000, 3999999
)

var (
	agentPKI    *agenttest.PKI
	agentClient agenttest.Pair
)

// createAgentSecrets makes a CA, the agent's server certificate for the
// address the controllers dial and a client certificate, and stores them
// as the two Secrets, as docs/capacity.md has the admin do: before helm
// install, so that the agent pod and the first enforced claim find them.
func createAgentSecrets(ctx context.Context) error {
	var err error
	if agentPKI, err = agenttest.NewPKI("nfs-csi-agent-ca"); err != nil {
		return err
	}
	server, err := agentPKI.Server(framework.NodeNFSAddr)
	if err != nil {
		return err
	}
	if agentClient, err = agentPKI.Client("nfs-csi-controller"); err != nil {
		return err
	}
	for name, pair := range map[string]agenttest.Pair{agentServerSecret: server, agentClientSecret: agentClient} {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: framework.ChartNamespace},
			Type:       corev1.SecretTypeTLS,
			Data: map[string][]byte{
				driver.SecretAgentCert: pair.CertPEM,
				driver.SecretAgentKey:  pair.KeyPEM,
				driver.SecretAgentCA:   agentPKI.CAPEM,
			},
		}
		if _, err := cluster.Client.CoreV1().Secrets(framework.ChartNamespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create Secret %s/%s: %w", framework.ChartNamespace, name, err)
		}
	}
	return nil
}

// TestQuotaAgentPod: the chart's agent DaemonSet (agent.enabled) runs on
// the node that is the NFS server, not privileged, and enforces capacity:
// a 64 MiB claim of an enforcing class gets a project quota of 64 MiB from
// the agent pod; `df` in the user's pod shows 64 MiB; a 100 MiB write
// fails with "No space left on device" with about 64 MiB used; deleting
// the claim removes the directory.
func TestQuotaAgentPod(t *testing.T) {
	t.Parallel() // after the serial tests (package comment)
	ctx := testContext(t, 20*time.Minute)
	pods, err := cluster.WaitPodsReady(ctx, framework.ChartNamespace, agentSelector, 1, podsTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if n := pods[0].Spec.NodeName; n != nodeName {
		t.Errorf("agent pod %s runs on %q, want the NFS server's node %s", pods[0].Name, n, nodeName)
	}
	for _, c := range pods[0].Spec.Containers {
		if sc := c.SecurityContext; sc != nil && sc.Privileged != nil && *sc.Privileged {
			t.Errorf("agent pod %s: container %s is privileged; the chart gives it four capabilities only", pods[0].Name, c.Name)
		}
	}
	ns := createNamespace(t, ctx, "quota")
	createSizedClaim(t, ctx, ns, "data", quotaClass, "64Mi")
	pvName := boundPV(t, ctx, ns, "data")
	pv, err := cluster.Client.CoreV1().PersistentVolumes().Get(ctx, pvName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	handle := pv.Spec.CSI.VolumeHandle

	// The limit, as the agent pod reports it to a client with the
	// controller's certificate.
	c, err := agent.NewClient(agentAddress, "", agentClient.CertPEM, agentClient.KeyPEM, agentPKI.CAPEM)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Get(ctx, agent.Request{Share: quotaExport, SubDir: ns + "/data", VolumeID: handle})
	if err != nil {
		t.Fatalf("agent %s: Get %s: %v", agentAddress, handle, err)
	}
	if st.LimitBytes != 64<<20 || st.ProjectID < agentIDMin || st.ProjectID > agentIDMax {
		t.Errorf("agent's quota of %s: %+v, want a 64 MiB limit and a project ID in %d-%d", handle, st, agentIDMin, agentIDMax)
	}

	dir := filepath.Join(quotaExport, ns, "data")
	// The pod reports on its log, not in the volume it fills: df, a
	// 100 MiB dd synced at the end (over NFS a quota's ENOSPC may surface
	// at write or at fsync), df again.
	pod := runPod(t, ctx, shellPod(ns, "filler", "data", `echo "before $(df -P -k /data | tail -n 1)"
dd if=/dev/zero of=/data/fill bs=1M count=100 conv=fsync 2>&1
echo "dd-exit=$?"
echo "after $(df -P -k /data | tail -n 1)"
rm -f /data/fill
echo done
sleep 3600`))
	var log string
	if err := pollFor(ctx, 8*time.Minute, func() bool {
		b, err := cluster.Client.CoreV1().Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{Container: "sh"}).DoRaw(ctx)
		log = string(b)
		return err == nil && strings.Contains(log, "\ndone\n")
	}); err != nil {
		t.Fatalf("the pod's log has no \"done\": %v\n%s\n%s", err, log, cluster.PodsReport(ctx, ns, ""))
	}
	t.Logf("the pod's log:\n%s", log)
	// df -P: Filesystem 1024-blocks Used Available Capacity Mounted-on
	dfLine := func(prefix string) (total, used int64) {
		for _, l := range strings.Split(log, "\n") {
			f := strings.Fields(strings.TrimPrefix(l, prefix+" "))
			if strings.HasPrefix(l, prefix+" ") && len(f) >= 6 {
				total, _ = strconv.ParseInt(f[1], 10, 64)
				used, _ = strconv.ParseInt(f[2], 10, 64)
				return total, used
			}
		}
		t.Fatalf("no %q df line in the pod's log", prefix)
		return 0, 0
	}
	if total, _ := dfLine("before"); total != 64<<10 {
		t.Errorf("df in the pod shows %d KiB, want 65536 (the 64 MiB limit, not the export's size)", total)
	}
	if strings.Contains(log, "dd-exit=0\n") || !strings.Contains(log, "No space left on device") {
		t.Errorf("a 100 MiB write into the 64 MiB volume did not fail with No space left on device")
	}
	if _, used := dfLine("after"); used < 48<<10 || used > 64<<10 {
		t.Errorf("after the failed write df shows %d KiB used, want about 64 MiB (48 to 64 MiB)", used)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("the volume's directory on the server: %v", err)
	}

	deletePod(t, ctx, pod)
	if err := cluster.Client.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, "data", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := pollFor(ctx, 3*time.Minute, func() bool {
		_, err := os.Stat(dir)
		_, pvErr := cluster.Client.CoreV1().PersistentVolumes().Get(ctx, pvName, metav1.GetOptions{})
		return os.IsNotExist(err) && apierrors.IsNotFound(pvErr)
	}); err != nil {
		t.Errorf("after the claim was deleted, %s or PV %s is still there: %v", dir, pvName, err)
	}
}
