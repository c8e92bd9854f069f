package manifests

import "os/exec"

func runShell(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}
