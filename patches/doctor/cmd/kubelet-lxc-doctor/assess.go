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
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Outcome is what one kubelet does at one check.
type Outcome struct {
	Fails  bool     `json:"fails"`
	Errors []string `json:"errors,omitempty"`
	Does   string   `json:"does"`
}

// Finding is one check that matters on this node.
type Finding struct {
	Check   string   `json:"check"`
	Title   string   `json:"title"`
	Files   []string `json:"files,omitempty"`
	Stock   Outcome  `json:"stock"`
	Patched Outcome  `json:"patched"`
	Fix     string   `json:"fix,omitempty"`
	// where on the start path the stock kubelet meets it (the first fatal one is its error)
	order int
}

// Side is one kubelet's verdict.
type Side struct {
	Starts bool `json:"starts"`
	// the upstream error texts of the first fatal check (what its log shows)
	FirstErrors []string `json:"firstErrors,omitempty"`
	FirstCheck  string   `json:"firstCheck,omitempty"`
}

// Report is the doctor's output.
type Report struct {
	Doctor        string `json:"doctor"`
	KubeletConfig string `json:"kubeletConfig,omitempty"`
	Verdict       struct {
		Stock   Side `json:"stock"`
		Patched Side `json:"patched"`
		// RKE2's own check of the delegated controllers (the kubelet does not need them at start)
		RKE2 struct {
			Starts  bool     `json:"starts"`
			Missing []string `json:"missingControllers,omitempty"`
		} `json:"rke2"`
	} `json:"verdict"`
	Findings     []Finding    `json:"findings"`
	Fixes        []string     `json:"fixes"`
	Environment  environment  `json:"environment"`
	Observations observations `json:"observations"`
}

const patchedFix = "run the kubelet-lxc patched kubelet (the kubelet-path bundle)"

// site describes a fault site: the files the series defaults when they read empty, and what
// the stock kubelet does then (upstream's error texts, as its log shows them).
type site struct {
	id, title   string
	file        *regexp.Regexp
	fatal       bool
	stockErrors []string
	stockDoes   string
	patchedDoes string
	order       int
}

var sites = []site{
	{id: "C", title: "EDAC DIMM size", file: regexp.MustCompile(`/edac/mc/.*/size$`), fatal: true, order: 10,
		stockErrors: []string{`strconv.Atoi: parsing "": invalid syntax`},
		stockDoes:   "cAdvisor's machine.Info fails, the kubelet exits", patchedDoes: "skips the DIMM (its capacity is not counted)"},
	{id: "D", title: "huge pages count", file: regexp.MustCompile(`/nr_hugepages$`), fatal: true, order: 11,
		stockErrors: []string{"could not parse file nr_hugepage"},
		stockDoes:   "cAdvisor's machine.Info fails, the kubelet exits", patchedDoes: "uses 0 huge pages"},
	{id: "D", title: "NUMA node distance", file: regexp.MustCompile(`/node[0-9]+/distance$`), fatal: true, order: 12,
		stockErrors: []string{"cannot convert  to int"},
		stockDoes:   "cAdvisor's machine.Info fails, the kubelet exits", patchedDoes: "uses no distances"},
	{id: "D", title: "CPU maximum frequency", file: regexp.MustCompile(`/cpuinfo_max_freq$`), fatal: true, order: 13,
		stockErrors: []string{`could not parse frequency ""`},
		stockDoes:   "cAdvisor's machine.Info fails, the kubelet exits", patchedDoes: "takes the clock speed from /proc/cpuinfo"},
	{id: "I", title: "task limits", file: regexp.MustCompile(`^/proc/sys/kernel/(pid_max|threads-max)$`), fatal: true, order: 30,
		stockErrors: []string{"slice bounds out of range"},
		stockDoes:   "pidlimit.Stats panics in NewContainerManager", patchedDoes: "ignores the file (no pid capacity from it)"},
	{id: "B", title: "CPU online list", file: regexp.MustCompile(`^/sys/devices/system/cpu/online$`), fatal: true, order: 40,
		stockErrors: []string{"/sys/devices/system/cpu/online found to be empty", "could not detect number of cpus"},
		stockDoes:   "every CPU counts as offline, no cores: the CPU manager fails", patchedDoes: "treats every CPU as online (as when the file is missing)"},
	{id: "A", title: "CPU topology ids", file: regexp.MustCompile(`/topology/(core_id|physical_package_id)$`), fatal: true, order: 41,
		stockErrors: []string{`strconv.Atoi: parsing "": invalid syntax`, "could not detect number of cpus"},
		stockDoes:   "cAdvisor drops the topology, no cores: the CPU manager fails", patchedDoes: "uses the CPU's number as its core id and package 0"},
	{id: "H", title: "kernel tunables", file: regexp.MustCompile(`^/proc/sys/(vm|kernel)/`), fatal: true, order: 60,
		stockErrors: []string{"Failed to start ContainerManager", `strconv.Atoi: parsing "": invalid syntax`},
		stockDoes:   "ContainerManager.Start fails on the read error", patchedDoes: "skips the tunable (left unchanged)"},
	{id: "G", title: "cgroup CPU config", file: regexp.MustCompile(`/cpu\.(max|weight)$`), order: 90,
		stockDoes: "errors when pod resources are read or resized (not at start)", patchedDoes: "uses the kernel default (cpu.max \"max 100000\", cpu.weight 100)"},
	{id: "F", title: "cgroup limit files", file: regexp.MustCompile(`^/sys/fs/cgroup/`), order: 91,
		stockDoes: "errors in cgroup stats (not at start)", patchedDoes: "reads an empty *.max limit as max"},
}

var absPath = regexp.MustCompile(`(/[^\s"':,()]+)`)

// defaultedFile is the file a patched default names, or "" for any other log line.
func defaultedFile(e logEntry) string {
	if e.Error || !strings.Contains(e.Msg, "empty") {
		return ""
	}
	if f := e.KV["file"]; f != "" {
		return f
	}
	if m := absPath.FindString(e.Msg); m != "" {
		return m
	}
	return ""
}

func assess(o observations, cfg kubeletConfig) Report {
	var r Report
	r.Observations = o
	r.Environment = o.Env
	gate := cfg.userNamespaceGate()

	// 1. every empty value the patched code defaulted: a site where stock takes upstream's error
	bySite := map[int]*Finding{}
	var flat string
	for _, e := range o.Log {
		if strings.Contains(e.Msg, "using a flat CPU topology") {
			flat = fmt.Sprintf("a flat topology of CPUs %s (from %s)", e.KV["valueUsed"], e.KV["cpusFrom"])
		}
		f := defaultedFile(e)
		if f == "" {
			continue
		}
		for i, s := range sites {
			if !s.file.MatchString(f) {
				continue
			}
			if bySite[i] == nil {
				fatalWord := "logs errors"
				if s.fatal {
					fatalWord = "fails"
				}
				bySite[i] = &Finding{Check: s.id, Title: s.title, order: s.order,
					Stock:   Outcome{Fails: s.fatal, Errors: s.stockErrors, Does: fatalWord + ": " + s.stockDoes},
					Patched: Outcome{Does: "starts: " + s.patchedDoes},
					Fix:     patchedFix}
			}
			if !contains(bySite[i].Files, f) {
				bySite[i].Files = append(bySite[i].Files, f)
			}
			break
		}
	}
	for _, f := range bySite {
		if flat != "" && (f.Check == "A" || f.Check == "D") {
			f.Patched.Does += "; the kubelet then uses " + flat
		}
		r.Findings = append(r.Findings, *f)
	}

	// 2. what fails both kubelets: not an empty value, or not a value at all
	both := func(check, title string, order int, errs []string, does, fix string) {
		r.Findings = append(r.Findings, Finding{Check: check, Title: title, order: order,
			Stock: Outcome{Fails: true, Errors: errs, Does: "fails: " + does}, Patched: Outcome{Fails: true, Errors: errs, Does: "fails: " + does}, Fix: fix})
	}
	if o.MachineErr != "" {
		both("machine", "cAdvisor machine info", 9, []string{o.MachineErr}, "cAdvisor's machine.Info fails on a value the series does not default (not an empty one)",
			"fix the file the error names: the series defaults only empty values")
	}
	if o.SwapErr != "" {
		both("swap", "swap", 20, []string{o.SwapErr}, "the swap check cannot read /proc/swaps", "make /proc/swaps readable")
	} else if o.SwapOn && cfg.failSwapOn() {
		both("swap", "swap", 20, []string{"running with swap on is not supported, please disable swap or set --fail-swap-on flag to false"},
			"swap is on (/proc/swaps) and failSwapOn is true",
			"set failSwapOn: false in the kubelet configuration (RKE2: kubelet-arg: fail-swap-on=false), or give the container no swap (Proxmox: swap: 0)")
	}
	if o.PidsErr != "" {
		both("pids", "task limits", 31, []string{o.PidsErr}, "pidlimit.Stats fails", "report it: the patched kubelet should not fail here")
	}
	if o.TopologyErr != "" {
		both("cpus", "CPU topology", 42, []string{o.TopologyErr}, "no CPU cores found even after the patched fallback",
			"check /sys/devices/system/cpu in the container (lxcfs) and cpuset.cpus.effective")
	}
	if o.KmsgErr != "" && !(o.Env.UserNamespace && gate) {
		fix := "bind /dev/kmsg into the container (Proxmox: lxc.mount.entry: /dev/kmsg dev/kmsg none bind,optional,create=file)"
		if o.Env.UserNamespace {
			fix += ", or enable the feature gate KubeletInUserNamespace=true (this container is in a user namespace)"
		}
		both("kmsg", "/dev/kmsg (OOM watcher)", 50, []string{o.KmsgErr}, "the OOM watcher cannot open /dev/kmsg", fix)
	}
	if o.TunablesErr != "" {
		errs := []string{"Failed to start ContainerManager", o.TunablesErr}
		fix := "give the tunables readable values (see the errors); the series defaults only empty ones"
		if cfg.ProtectKernelDefaults {
			fix += "; with protectKernelDefaults every tunable must hold the value the kubelet wants: set it on the host (sysctl -w), or turn protectKernelDefaults off"
		}
		both("tunables", "kernel tunables", 61, errs, "ContainerManager.Start fails on a tunable that is not empty but wrong or unreadable", fix)
	}
	if !cfg.ProtectKernelDefaults {
		var denied, names []string
		for _, t := range o.Tunables {
			if !t.Writable {
				denied = append(denied, t.WriteErr)
				names = append(names, fmt.Sprintf("%s=%d", strings.ReplaceAll(t.Name, "/", "."), t.Wanted))
			}
		}
		if len(denied) > 0 && !(o.Env.UserNamespace && gate) {
			fix := "set them on the host, where the container sees them (sysctl -w " + strings.Join(names, " ") + ")"
			if o.Env.UserNamespace {
				fix += ", or enable the feature gate KubeletInUserNamespace=true (this container is in a user namespace)"
			}
			both("tunable-writes", "kernel tunables the kubelet sets", 62, append([]string{"Failed to start ContainerManager"}, denied...),
				"the kubelet must set tunables that it may not write here", fix)
		}
	}
	for name, e := range o.CgroupErrs {
		r.Findings = append(r.Findings, Finding{Check: "cgroup", Title: "cgroup file " + name, order: 92,
			Stock: Outcome{Errors: []string{e}, Does: "logs errors: " + e}, Patched: Outcome{Errors: []string{e}, Does: "logs errors: " + e},
			Fix: "not on the start path; a value the series does not default"})
	}
	sort.SliceStable(r.Findings, func(i, j int) bool {
		if r.Findings[i].order != r.Findings[j].order {
			return r.Findings[i].order < r.Findings[j].order
		}
		return r.Findings[i].Check < r.Findings[j].Check
	})

	// 3. the verdicts: the first fatal check is the error each kubelet's log shows
	r.Verdict.Stock.Starts, r.Verdict.Patched.Starts = true, true
	for _, f := range r.Findings {
		if f.Stock.Fails && r.Verdict.Stock.Starts {
			r.Verdict.Stock = Side{Starts: false, FirstErrors: f.Stock.Errors, FirstCheck: f.Check}
		}
		if f.Patched.Fails && r.Verdict.Patched.Starts {
			r.Verdict.Patched = Side{Starts: false, FirstErrors: f.Patched.Errors, FirstCheck: f.Check}
		}
		if (f.Stock.Fails || f.Patched.Fails) && f.Fix != "" && !contains(r.Fixes, f.Fix) {
			r.Fixes = append(r.Fixes, f.Fix)
		}
	}
	r.Verdict.RKE2.Starts = true
	for _, c := range []string{"cpu", "cpuset", "memory"} {
		if o.Env.CgroupV2 && !contains(o.Env.Controllers, c) {
			r.Verdict.RKE2.Starts = false
			r.Verdict.RKE2.Missing = append(r.Verdict.RKE2.Missing, c)
		}
	}
	if !r.Verdict.RKE2.Starts {
		r.Fixes = append(r.Fixes, fmt.Sprintf("RKE2 refuses to start without the %s cgroup controller(s): delegate them to the container (on the host, enable them in cgroup.subtree_control of every cgroup above it)", strings.Join(r.Verdict.RKE2.Missing, ", ")))
	}
	if r.Fixes == nil {
		r.Fixes = []string{}
	}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	if r.Environment.Controllers == nil {
		r.Environment.Controllers = []string{}
	}
	return r
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
