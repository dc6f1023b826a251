// A stand-in for the patched kubelet in tests: a small static program that answers
// `--version` the way kubelet does ("Kubernetes <version>"). The version is set at build time:
//
//	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -ldflags "-X main.version=v1.36.4+rke2r1 -X main.flavour=patched" .
package main

import (
	"fmt"
	"os"
)

var (
	version = "v0.0.0-unset"
	// flavour makes binaries of the same version differ (stock vs patched) in tests.
	flavour = "patched"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "--version" {
		fmt.Printf("Kubernetes %s\n", version)
		return
	}
	fmt.Fprintf(os.Stderr, "fake kubelet %s (%s): only --version is implemented\n", version, flavour)
	os.Exit(2)
}
