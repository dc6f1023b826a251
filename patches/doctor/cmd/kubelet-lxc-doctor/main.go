/*
Copyright 2026 The kubelet-lxc Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// kubelet-lxc-doctor predicts, on a node (an LXC container), whether the stock kubelet
// starts and what the patched one does instead. It is built from the same patched tree as
// the kubelet it ships with and runs the kubelet's own start-path code (cAdvisor's machine
// info, the CPU topology, the swap check, the OOM watcher's /dev/kmsg, pid limits, the kernel
// tunables, the cgroup readers); the patched code logs one warning for every empty value it
// defaults, and each such warning is a place where the stock kubelet takes upstream's error.
// It never writes to the node.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"k8s.io/component-base/version"
)

func main() {
	var (
		jsonOut     bool
		configFile  string
		showVersion bool
	)
	flag.BoolVar(&showVersion, "version", false, "print the version (the kubelet's it was built with) and exit")
	flag.BoolVar(&jsonOut, "json", false, "print the report as JSON")
	flag.StringVar(&configFile, "kubelet-config", "", "the kubelet's configuration file, for failSwapOn, protectKernelDefaults and featureGates (default: the kubelet's defaults)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: kubelet-lxc-doctor [--json] [--kubelet-config FILE]\n\n"+
			"Predicts on this node whether the stock kubelet starts, what the patched kubelet does\n"+
			"instead, and how to fix each blocker. Exit status: 0 the patched kubelet starts,\n"+
			"1 it is blocked here too (see the fixes), 2 the doctor could not run.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if showVersion {
		fmt.Printf("kubelet-lxc-doctor %s\n", version.Get().GitVersion)
		return
	}
	if flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	cfg, err := readKubeletConfig(configFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubelet-lxc-doctor: %v\n", err)
		os.Exit(2)
	}
	obs := probe(cfg)
	rep := assess(obs, cfg)
	rep.Doctor = version.Get().GitVersion
	rep.KubeletConfig = configFile
	if jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(os.Stderr, "kubelet-lxc-doctor: %v\n", err)
			os.Exit(2)
		}
	} else {
		printText(os.Stdout, rep)
	}
	if !rep.Verdict.Patched.Starts {
		os.Exit(1)
	}
}
