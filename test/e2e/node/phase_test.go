//go:build e2e

package node

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// runPhase runs E2E_NODE_PHASE, a command (with arguments split on
// spaces), against the bed after the scenarios, while the control plane,
// the kubelet and the chart's pods still run: the storage suite
// (test/e2e/storage/guest.sh) uses it. It gets KUBECONFIG (the admin's)
// and NODE_NAME. Returns code, or the phase's failure when code is 0.
func runPhase(code int) int {
	phase := os.Getenv("E2E_NODE_PHASE")
	if phase == "" {
		return code
	}
	args := strings.Fields(phase)
	t0 := time.Now()
	fmt.Printf("e2e-node: phase %s\n", phase)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cluster.AdminKubeconfig, "NODE_NAME="+nodeName)
	err := cmd.Run()
	fmt.Printf("e2e-node: phase done in %.1fs: %v\n", time.Since(t0).Seconds(), err)
	if err != nil && code == 0 {
		return 1
	}
	return code
}
