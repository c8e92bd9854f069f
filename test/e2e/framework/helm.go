//go:build e2e

package framework

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// HelmInstall runs `helm install RELEASE CHART --namespace NAMESPACE
// --values VALUES` against the cluster, as docs/install.md tells admins,
// with helm's state in a private directory.
func (c *Cluster) HelmInstall(ctx context.Context, helm, chart, release, namespace, values string) error {
	home := filepath.Join(c.Dir, "helm")
	for attempt := 1; ; attempt++ {
		cmd := exec.CommandContext(ctx, helm, "install", release, chart, "--namespace", namespace,
			"--values", values, "--kubeconfig", c.AdminKubeconfig)
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
		out, err := cmd.CombinedOutput()
		if err == nil {
			return nil
		}
		// helm gives up on an apiserver that is slow to answer its first
		// request (a 10 s TLS handshake timeout): on a loaded machine the
		// bed's apiserver once took 25 s per request. Nothing is installed
		// then, so the same install is run again, as an admin would.
		if !strings.Contains(string(out), "Kubernetes cluster unreachable") || attempt == 5 || ctx.Err() != nil {
			return fmt.Errorf("helm install %s %s (attempt %d): %v\n%s", release, chart, attempt, err, out)
		}
		fmt.Printf("helm install %s: cluster unreachable (attempt %d), again in 15s: %s\n", release, attempt, strings.TrimSpace(string(out)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(15 * time.Second):
		}
	}
}

// WaitPodsReady waits until at least want pods match selector in namespace
// and every one of them is Running with all containers ready.
func (c *Cluster) WaitPodsReady(ctx context.Context, namespace, selector string, want int, timeout time.Duration) ([]corev1.Pod, error) {
	var pods []corev1.Pod
	err := poll(ctx, timeout, nil, func() (bool, error) {
		list, err := c.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, nil
		}
		pods = list.Items
		if len(pods) < want {
			return false, nil
		}
		for i := range pods {
			if !PodReady(&pods[i]) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return pods, fmt.Errorf("pods %s in %s not all Running and Ready (want %d): %w\n%s",
			selector, namespace, want, err, c.PodsReport(ctx, namespace, selector))
	}
	return pods, nil
}

// PodReady reports whether pod is Running with every container ready.
func PodReady(pod *corev1.Pod) bool {
	if pod.Status.Phase != corev1.PodRunning || len(pod.Status.ContainerStatuses) == 0 {
		return false
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if !cs.Ready {
			return false
		}
	}
	return true
}

// PodsReport describes the pods matching selector and their events, for
// failure messages.
func (c *Cluster) PodsReport(ctx context.Context, namespace, selector string) string {
	list, err := c.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, p := range list.Items {
		fmt.Fprintf(&b, "pod %s on %q: %s\n", p.Name, p.Spec.NodeName, p.Status.Phase)
		for _, cs := range p.Status.ContainerStatuses {
			fmt.Fprintf(&b, "  %s ready=%v restarts=%d state=%+v last=%+v\n", cs.Name, cs.Ready, cs.RestartCount, cs.State, cs.LastTerminationState)
		}
		events, err := c.Client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + p.Name})
		if err == nil {
			for _, e := range events.Items {
				fmt.Fprintf(&b, "  event %s %s: %s\n", e.Type, e.Reason, e.Message)
			}
		}
	}
	return b.String()
}
