// pause holds a pod's namespaces for the real test node's containerd (its
// sandbox image), as registry.k8s.io/pause does: sleep until SIGINT or
// SIGTERM, and reap the zombies of a shared process namespace meanwhile.
// Ours, because the test machine reaches no registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	children := make(chan os.Signal, 16)
	signal.Notify(children, syscall.SIGCHLD)
	for {
		select {
		case <-stop:
			return
		case <-children:
			for {
				pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
		}
	}
}
