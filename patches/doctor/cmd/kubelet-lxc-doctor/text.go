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
	"io"
	"strings"
)

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func printText(w io.Writer, r Report) {
	e := r.Environment
	fmt.Fprintf(w, "kubelet-lxc doctor %s\n", r.Doctor)
	fmt.Fprintf(w, "node: container %q, user namespace %s (uid map %s), cgroup v2 %s, controllers [%s], root fs %s, AppArmor %s, %d lxcfs mounts\n",
		e.Container, yesNo(e.UserNamespace), e.UIDMap, yesNo(e.CgroupV2), strings.Join(e.Controllers, " "), e.RootFsType, e.AppArmor, e.LxcfsMounts)
	if len(r.Findings) == 0 {
		fmt.Fprintln(w, "\nno value on the kubelet's start path reads empty or fails here")
	}
	for _, f := range r.Findings {
		fmt.Fprintf(w, "\n[%s] %s\n", f.Check, f.Title)
		for i, file := range f.Files {
			if i == 6 {
				fmt.Fprintf(w, "  ... and %d more\n", len(f.Files)-i)
				break
			}
			fmt.Fprintf(w, "  %s reads empty\n", file)
		}
		fmt.Fprintf(w, "  stock kubelet:   %s\n", f.Stock.Does)
		for _, err := range f.Stock.Errors {
			fmt.Fprintf(w, "                   error: %s\n", err)
		}
		fmt.Fprintf(w, "  patched kubelet: %s\n", f.Patched.Does)
	}
	side := func(name string, s Side) {
		if s.Starts {
			fmt.Fprintf(w, "  %s kubelet: starts\n", name)
		} else {
			fmt.Fprintf(w, "  %s kubelet: FAILS at [%s] with %s\n", name, s.FirstCheck, strings.Join(quote(s.FirstErrors), ", "))
		}
	}
	fmt.Fprintln(w, "\nverdict:")
	side("stock  ", r.Verdict.Stock)
	side("patched", r.Verdict.Patched)
	if r.Verdict.RKE2.Starts {
		fmt.Fprintln(w, "  RKE2 controllers: cpu, cpuset and memory delegated")
	} else {
		fmt.Fprintf(w, "  RKE2 controllers: missing %s (RKE2 refuses to start)\n", strings.Join(r.Verdict.RKE2.Missing, ", "))
	}
	if len(r.Fixes) > 0 {
		fmt.Fprintln(w, "\nfixes:")
		for _, f := range r.Fixes {
			fmt.Fprintf(w, "  - %s\n", f)
		}
	}
}

func quote(list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}
