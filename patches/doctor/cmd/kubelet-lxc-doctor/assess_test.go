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

package main

import (
	"reflect"
	"strings"
	"testing"
)

// The verdict from what the kubelet's code logged and returned. The lab checks the whole
// doctor against real kubelets; these pin the mapping from the series' warnings to sites.

func warn(phase, msg string, kv map[string]string) logEntry {
	return logEntry{Phase: phase, Msg: msg, KV: kv}
}

var cleanEnv = environment{CgroupV2: true, Controllers: []string{"cpuset", "cpu", "io", "memory", "pids"}}

func TestLXCDoctorCleanNode(t *testing.T) {
	r := assess(observations{NumCores: 4, NumCoresUsed: 4, Env: cleanEnv}, kubeletConfig{})
	if !r.Verdict.Stock.Starts || !r.Verdict.Patched.Starts || !r.Verdict.RKE2.Starts {
		t.Fatalf("a clean node: want every kubelet to start, got %+v", r.Verdict)
	}
	if len(r.Findings) != 0 || len(r.Fixes) != 0 {
		t.Fatalf("a clean node: want no findings and no fixes, got %+v %v", r.Findings, r.Fixes)
	}
}

func TestLXCDoctorEmptyValuesFailStockOnly(t *testing.T) {
	o := observations{NumCores: 0, NumCoresUsed: 2, Env: cleanEnv, Log: []logEntry{
		warn("machine", `CPU topology file /sys/devices/system/cpu/cpu0/topology/core_id is empty, using 0`, nil),
		warn("machine", `CPU topology file /sys/devices/system/cpu/cpu1/topology/core_id is empty, using 1`, nil),
		warn("machine", `CPU online list /sys/devices/system/cpu/online is empty, using "all CPUs online" (as when the file does not exist)`, nil),
		warn("pids", "Warning: task limit file is empty, ignoring it", map[string]string{"file": "/proc/sys/kernel/pid_max", "valueUsed": "ignored"}),
		warn("tunables", "Warning: kernel tunable is empty, skipping it (value left unchanged)", map[string]string{"file": "/proc/sys/vm/overcommit_memory"}),
		warn("cgroup", "cgroup file /sys/fs/cgroup/memory.max is empty, using max", nil),
		// an error line is never a default
		{Phase: "machine", Error: true, Msg: "Failed to get topology information: strconv.Atoi: parsing \"\": invalid syntax"},
	}}
	r := assess(o, kubeletConfig{})
	var checks []string
	for _, f := range r.Findings {
		checks = append(checks, f.Check)
		if f.Patched.Fails {
			t.Errorf("%s: an empty value must not fail the patched kubelet: %+v", f.Check, f)
		}
	}
	// in start-path order: pid limits (NewContainerManager) before the CPU manager, tunables last
	if want := []string{"I", "B", "A", "H", "F"}; !reflect.DeepEqual(checks, want) {
		t.Fatalf("findings: got %v, want %v", checks, want)
	}
	if r.Verdict.Stock.Starts || r.Verdict.Stock.FirstCheck != "I" || !reflect.DeepEqual(r.Verdict.Stock.FirstErrors, []string{"slice bounds out of range"}) {
		t.Fatalf("stock: want it to fail first at I (the pidlimit panic), got %+v", r.Verdict.Stock)
	}
	if !r.Verdict.Patched.Starts {
		t.Fatalf("patched: want it to start, got %+v", r.Verdict.Patched)
	}
	if a := r.Findings[2]; len(a.Files) != 2 || !a.Stock.Fails {
		t.Fatalf("site A: want both files and a stock failure, got %+v", a)
	}
	if f := r.Findings[4]; f.Stock.Fails {
		t.Fatalf("site F is not on the start path: %+v", f)
	}
}

func TestLXCDoctorEDACFailsFirst(t *testing.T) {
	o := observations{NumCores: 2, NumCoresUsed: 2, Env: cleanEnv, Log: []logEntry{
		warn("tunables", "Warning: kernel tunable is empty, skipping it (value left unchanged)", map[string]string{"file": "/proc/sys/kernel/panic"}),
		warn("machine", "DIMM size file /sys/devices/system/edac/mc/mc0/dimm0/size is empty, skipping this DIMM (capacity not counted)", nil),
	}}
	r := assess(o, kubeletConfig{})
	if r.Verdict.Stock.FirstCheck != "C" || r.Verdict.Stock.FirstErrors[0] != `strconv.Atoi: parsing "": invalid syntax` {
		t.Fatalf("cAdvisor's machine info comes first: got %+v", r.Verdict.Stock)
	}
}

func TestLXCDoctorNonEmptyFailuresFailBoth(t *testing.T) {
	o := observations{NumCores: 2, NumCoresUsed: 2, Env: cleanEnv, TunablesErr: `strconv.Atoi: parsing "one": invalid syntax`}
	r := assess(o, kubeletConfig{ProtectKernelDefaults: true})
	if r.Verdict.Stock.Starts || r.Verdict.Patched.Starts {
		t.Fatalf("garbage in a tunable fails both, got %+v", r.Verdict)
	}
	want := []string{"Failed to start ContainerManager", `strconv.Atoi: parsing "one": invalid syntax`}
	if !reflect.DeepEqual(r.Verdict.Stock.FirstErrors, want) || !reflect.DeepEqual(r.Verdict.Patched.FirstErrors, want) {
		t.Fatalf("both name upstream's error: got %+v", r.Verdict)
	}
	if len(r.Fixes) != 1 || !strings.Contains(r.Fixes[0], "protectKernelDefaults") {
		t.Fatalf("the fix names protectKernelDefaults: %v", r.Fixes)
	}
}

func TestLXCDoctorNeighbouringBlockers(t *testing.T) {
	userns := environment{UserNamespace: true, CgroupV2: true, Controllers: []string{"cpu", "memory", "pids"}}
	o := observations{NumCores: 2, NumCoresUsed: 2, Env: userns, SwapOn: true, KmsgErr: "open /dev/kmsg: no such file or directory",
		Tunables: []tunable{{Name: "vm/overcommit_memory", Value: "0", Wanted: 1, WriteErr: "open /proc/sys/vm/overcommit_memory: permission denied"}}}
	gateOff := map[string]bool{"KubeletInUserNamespace": false}
	r := assess(o, kubeletConfig{FeatureGates: gateOff})
	var checks []string
	for _, f := range r.Findings {
		checks = append(checks, f.Check)
	}
	if want := []string{"swap", "kmsg", "tunable-writes"}; !reflect.DeepEqual(checks, want) {
		t.Fatalf("findings: got %v, want %v", checks, want)
	}
	if r.Verdict.Patched.Starts || r.Verdict.Patched.FirstCheck != "swap" {
		t.Fatalf("swap blocks both first: %+v", r.Verdict.Patched)
	}
	if r.Verdict.RKE2.Starts || !reflect.DeepEqual(r.Verdict.RKE2.Missing, []string{"cpuset"}) {
		t.Fatalf("RKE2 needs cpuset: %+v", r.Verdict.RKE2)
	}
	if !strings.Contains(strings.Join(r.Fixes, "\n"), "KubeletInUserNamespace=true") || !strings.Contains(strings.Join(r.Fixes, "\n"), "vm.overcommit_memory=1") {
		t.Fatalf("fixes: %v", r.Fixes)
	}
	// failSwapOn: false, and the gate in a user namespace, clear those
	off := false
	r = assess(o, kubeletConfig{FailSwapOn: &off, FeatureGates: map[string]bool{"KubeletInUserNamespace": true}})
	if !r.Verdict.Patched.Starts || !r.Verdict.Stock.Starts {
		t.Fatalf("with failSwapOn false and the gate both start: %+v %+v", r.Verdict, r.Findings)
	}
}

// KubeletInUserNamespace, when the configuration leaves it out, is what this release's kubelet
// takes (userNamespaceGateDefault, in the series' release_test.go: off before Kubernetes 1.37,
// on since). The doctor judges /dev/kmsg and the tunable writes in a user namespace by it.
func TestLXCDoctorUserNamespaceGateDefault(t *testing.T) {
	if got := (kubeletConfig{}).userNamespaceGate(); got != userNamespaceGateDefault {
		t.Fatalf("KubeletInUserNamespace unset: got %v, want %v in %s", got, userNamespaceGateDefault, seriesMinor)
	}
	if (kubeletConfig{FeatureGates: map[string]bool{"KubeletInUserNamespace": !userNamespaceGateDefault}}).userNamespaceGate() != !userNamespaceGateDefault {
		t.Fatalf("an explicit setting must win over the default")
	}
	userns := environment{UserNamespace: true, CgroupV2: true, Controllers: []string{"cpu", "cpuset", "memory", "pids"}}
	r := assess(observations{NumCores: 2, NumCoresUsed: 2, Env: userns, KmsgErr: "open /dev/kmsg: no such file or directory"}, kubeletConfig{})
	if r.Verdict.Stock.Starts != userNamespaceGateDefault || r.Verdict.Patched.Starts != userNamespaceGateDefault {
		t.Fatalf("no /dev/kmsg in a user namespace, gate unset: stock starts %v, patched starts %v; want %v", r.Verdict.Stock.Starts, r.Verdict.Patched.Starts, userNamespaceGateDefault)
	}
}
