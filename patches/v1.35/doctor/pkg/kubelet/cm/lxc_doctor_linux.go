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

// Compiled into kubelet-lxc-doctor only (a go build -overlay file, never part of the
// kubelet's tree): it lets the doctor run the kubelet's own start-path code.

package cm

import (
	"k8s.io/klog/v2"
)

// LXCDoctorKernelTunables runs ContainerManager's tunable check (site H). The doctor passes
// KernelTunableWarn or KernelTunableError only: it never writes a tunable through it.
// In 1.35 setupKernelTunables takes no logger: it logs through klog's global logger, which the
// doctor captures as well; the parameter keeps the call the same in every series.
func LXCDoctorKernelTunables(_ klog.Logger, protectKernelDefaults bool) error {
	option := KernelTunableWarn
	if protectKernelDefaults {
		option = KernelTunableError
	}
	return setupKernelTunables(option)
}

// LXCDoctorCgroupCPUConfig reads cpu.max and cpu.weight as the cgroup v2 manager does (site G).
func LXCDoctorCgroupCPUConfig(cgroupPath string) (*ResourceConfig, error) {
	return (&cgroupV2impl{}).getCgroupCPUConfig(cgroupPath)
}

// LXCDoctorCgroupMemoryConfig reads memory.max as the cgroup v2 manager does (site G).
func LXCDoctorCgroupMemoryConfig(cgroupPath string) (*ResourceConfig, error) {
	return readCgroupMemoryConfig(cgroupPath, "memory.max")
}
