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

// cAdvisor's packages as this release vendors them (cAdvisor v0.56.2). The shared
// probe.go reaches them only through these names, so one probe.go serves every series.
import (
	"github.com/google/cadvisor/fs"
	"github.com/google/cadvisor/machine"
	"github.com/google/cadvisor/utils/oomparser"
	"github.com/google/cadvisor/utils/sysfs"
)

type (
	cadvisorFsInfo    = fs.FsInfo
	cadvisorFs        = fs.Fs
	cadvisorFsContext = fs.Context
)

var (
	newRealSysFs    = sysfs.NewRealSysFs
	newFsInfo       = fs.NewFsInfo
	machineInfo     = machine.Info
	machineTopology = machine.GetTopology
	newOomParser    = oomparser.New
)
