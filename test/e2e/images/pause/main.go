// Command pause is the pod sandbox's process in the e2e bed's containerd
// (imported as the sandbox image containerd expects): no registry is
// reachable there, so the upstream pause image cannot be pulled. Like it, it
// sleeps until SIGINT or SIGTERM and reaps the zombies of a shared PID
// namespace, whose init it is.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
