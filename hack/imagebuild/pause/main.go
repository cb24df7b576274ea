// Command pause is the sandbox ("pause") container of the lab's real nodes: it holds
// a pod's namespaces, exits on SIGINT or SIGTERM and reaps the zombies it inherits as
// a pod's PID 1, like Kubernetes' own pause (build/pause/linux/pause.c). The image is
// built by `imagebuild build -images pause` so that the lab needs no registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
