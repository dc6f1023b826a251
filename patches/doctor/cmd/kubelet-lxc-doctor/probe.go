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
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	"github.com/moby/sys/mountinfo"
	"github.com/moby/sys/userns"
	"github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fscommon"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	utilsysctl "k8s.io/component-helpers/node/util/sysctl"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"k8s.io/kubernetes/pkg/features"
	kubeletcadvisor "k8s.io/kubernetes/pkg/kubelet/cadvisor"
	"k8s.io/kubernetes/pkg/kubelet/cm"
	"k8s.io/kubernetes/pkg/kubelet/cm/cpumanager/topology"
	"k8s.io/kubernetes/pkg/kubelet/stats/pidlimit"
	"k8s.io/kubernetes/pkg/kubelet/util/swap"
)

// kubeletConfig is the part of a KubeletConfiguration file the start path depends on.
type kubeletConfig struct {
	FailSwapOn            *bool           `json:"failSwapOn,omitempty"`
	ProtectKernelDefaults bool            `json:"protectKernelDefaults,omitempty"`
	FeatureGates          map[string]bool `json:"featureGates,omitempty"`
}

func (c kubeletConfig) failSwapOn() bool { return c.FailSwapOn == nil || *c.FailSwapOn }

// userNamespaceGate is KubeletInUserNamespace as the kubelet of this tree sees it: the
// configuration's value, else the gate's default in this release (off before 1.37, on since).
func (c kubeletConfig) userNamespaceGate() bool {
	if v, ok := c.FeatureGates[string(features.KubeletInUserNamespace)]; ok {
		return v
	}
	return utilfeature.DefaultFeatureGate.Enabled(features.KubeletInUserNamespace)
}

func readKubeletConfig(file string) (kubeletConfig, error) {
	var c kubeletConfig
	if file == "" {
		return c, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return c, fmt.Errorf("cannot read the kubelet configuration: %w", err)
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("%s is not a kubelet configuration file: %w", file, err)
	}
	return c, nil
}

// logEntry is one line the kubelet's code logged while the doctor ran it.
type logEntry struct {
	Phase string            `json:"phase"`
	Error bool              `json:"error,omitempty"`
	Msg   string            `json:"msg"`
	KV    map[string]string `json:"kv,omitempty"`
	Err   string            `json:"err,omitempty"`
}

// capture takes klog (cAdvisor, the kubelet) and logrus (opencontainers/cgroups) output.
type capture struct {
	mu      sync.Mutex
	phase   string
	entries []logEntry
}

func (c *capture) setPhase(p string) { c.mu.Lock(); c.phase = p; c.mu.Unlock() }

func (c *capture) add(e logEntry) {
	c.mu.Lock()
	e.Phase = c.phase
	c.entries = append(c.entries, e)
	c.mu.Unlock()
}

type captureSink struct {
	c      *capture
	values []any
}

func (s captureSink) Init(logr.RuntimeInfo)  {}
func (s captureSink) Enabled(level int) bool { return level <= 0 }
func (s captureSink) Info(_ int, msg string, kv ...any) {
	s.c.add(logEntry{Msg: msg, KV: kvMap(append(append([]any{}, s.values...), kv...))})
}
func (s captureSink) Error(err error, msg string, kv ...any) {
	e := logEntry{Error: true, Msg: msg, KV: kvMap(append(append([]any{}, s.values...), kv...))}
	if err != nil {
		e.Err = err.Error()
	}
	s.c.add(e)
}
func (s captureSink) WithValues(kv ...any) logr.LogSink {
	return captureSink{c: s.c, values: append(append([]any{}, s.values...), kv...)}
}
func (s captureSink) WithName(string) logr.LogSink { return s }

func kvMap(kv []any) map[string]string {
	if len(kv) == 0 {
		return nil
	}
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[fmt.Sprint(kv[i])] = fmt.Sprint(kv[i+1])
	}
	return m
}

type logrusHook struct{ c *capture }

func (h logrusHook) Levels() []logrus.Level { return logrus.AllLevels }
func (h logrusHook) Fire(e *logrus.Entry) error {
	h.c.add(logEntry{Error: e.Level <= logrus.ErrorLevel, Msg: e.Message})
	return nil
}

// observations is what running the kubelet's code on this node showed.
type observations struct {
	// every line the kubelet's code logged while the doctor ran it
	Log []logEntry `json:"log"`
	// cAdvisor machine.Info (cadvisor.New): an error here ends the kubelet
	MachineErr string `json:"machineErr,omitempty"`
	NumCores   int    `json:"numCores"`
	// after the patched kubelet's flat-topology fallback, then the CPU manager's topology.Discover
	NumCoresUsed int    `json:"numCoresUsed"`
	TopologyErr  string `json:"topologyErr,omitempty"`
	SwapOn       bool   `json:"swapOn"`
	SwapErr      string `json:"swapErr,omitempty"`
	KmsgErr      string `json:"kmsgErr,omitempty"`
	// setupKernelTunables' result (read errors, and wrong values under protectKernelDefaults)
	TunablesErr string `json:"tunablesErr,omitempty"`
	// tunables whose value differs from what the kubelet sets, and whether it may write them
	Tunables []tunable `json:"tunables"`
	// pidlimit.Stats
	MaxPID  int64  `json:"maxPID"`
	PidsErr string `json:"pidsErr,omitempty"`
	// the cgroup readers of the node's cgroup (not on the start path)
	CgroupErrs map[string]string `json:"cgroupErrs,omitempty"`
	// reported once, as the report's environment
	Env environment `json:"-"`
}

type tunable struct {
	Name     string `json:"name"`
	Value    string `json:"value"`
	Wanted   int    `json:"wanted"`
	Writable bool   `json:"writable"`
	WriteErr string `json:"writeErr,omitempty"`
}

type environment struct {
	UserNamespace bool     `json:"userNamespace"`
	UIDMap        string   `json:"uidMap"`
	CgroupV2      bool     `json:"cgroupV2"`
	Controllers   []string `json:"controllers"`
	RootFsType    string   `json:"rootFsType"`
	AppArmor      string   `json:"appArmor"`
	LxcfsMounts   int      `json:"lxcfsMounts"`
	Container     string   `json:"container"`
}

// noFsInfo stands in when cAdvisor cannot list file systems (machine.Info only logs that).
type noFsInfo struct{ cadvisorFsInfo }

func (noFsInfo) GetGlobalFsInfo() ([]cadvisorFs, error) {
	return nil, fmt.Errorf("no file system information")
}

// probe runs the kubelet's start-path code in the order the kubelet does.
func probe(cfg kubeletConfig) observations {
	c := &capture{}
	logger := logr.New(captureSink{c: c})
	klog.SetLogger(logger)
	logrus.SetOutput(io.Discard)
	logrus.AddHook(logrusHook{c: c})
	var o observations

	// cadvisor.New -> manager.New -> machine.Info
	c.setPhase("machine")
	sysFs := newRealSysFs()
	inHostNamespace := true
	if _, err := os.Stat("/rootfs/proc"); err == nil {
		inHostNamespace = false
	}
	var fsInfo cadvisorFsInfo = noFsInfo{}
	if f, err := newFsInfo(cadvisorFsContext{}); err == nil {
		fsInfo = f
	}
	info, err := machineInfo(sysFs, fsInfo, inHostNamespace)
	if err != nil {
		o.MachineErr = err.Error()
		// the CPU topology is read after the failing part: read it on its own, for the report
		c.setPhase("machine-topology")
		if _, n, err := machineTopology(sysFs); err == nil {
			o.NumCores = n
		}
	} else {
		o.NumCores = info.NumCores
	}
	// NewContainerManager: swap, the kubelet's MachineInfo (the patched fallback), pid limits, the CPU manager
	c.setPhase("swap")
	on, err := swap.IsSwapOn()
	o.SwapOn = on
	if err != nil {
		o.SwapErr = err.Error()
	}
	if info != nil {
		c.setPhase("fallback")
		kubeletcadvisor.LXCDoctorFlatTopologyFallback(logger, info)
		o.NumCoresUsed = info.NumCores
	}
	c.setPhase("pids")
	o.MaxPID, o.PidsErr = pidStats()
	if info != nil {
		c.setPhase("cpus")
		if _, err := topology.Discover(logger, info); err != nil {
			o.TopologyErr = err.Error()
		}
	}
	// NewMainKubelet: the OOM watcher reads /dev/kmsg
	c.setPhase("kmsg")
	if p, err := newOomParser(); err != nil {
		o.KmsgErr = err.Error()
	} else {
		_ = p
	}
	// ContainerManager.Start -> setupNode -> setupKernelTunables (read only: Warn or Error, never Modify)
	c.setPhase("tunables")
	if err := cm.LXCDoctorKernelTunables(logger, cfg.ProtectKernelDefaults); err != nil {
		o.TunablesErr = err.Error()
	}
	o.Tunables = tunables()
	// the cgroup readers (stats and pod resize; not the start path)
	c.setPhase("cgroup")
	o.CgroupErrs = cgroupReads()
	o.Env = env()
	c.mu.Lock()
	o.Log = c.entries
	c.mu.Unlock()
	return o
}

// pidStats turns the stock kubelet's panic into an error, should the patched one still panic.
func pidStats() (maxPID int64, errText string) {
	defer func() {
		if r := recover(); r != nil {
			errText = fmt.Sprintf("panic: %v", r)
		}
	}()
	s, err := pidlimit.Stats()
	if err != nil {
		return 0, err.Error()
	}
	if s != nil && s.MaxPID != nil {
		maxPID = *s.MaxPID
	}
	return maxPID, ""
}

// desiredTunables is setupKernelTunables' table (pkg/kubelet/cm/container_manager_linux.go).
var desiredTunables = map[string]int{
	utilsysctl.VMOvercommitMemory: utilsysctl.VMOvercommitMemoryAlways,
	utilsysctl.VMPanicOnOOM:       utilsysctl.VMPanicOnOOMInvokeOOMKiller,
	utilsysctl.KernelPanic:        utilsysctl.KernelPanicRebootTimeout,
	utilsysctl.KernelPanicOnOops:  utilsysctl.KernelPanicOnOopsAlways,
	utilsysctl.RootMaxKeys:        utilsysctl.RootMaxKeysSetting,
	utilsysctl.RootMaxBytes:       utilsysctl.RootMaxBytesSetting,
}

// tunables lists the tunables the kubelet would write (value readable but not the wanted one)
// and whether it may: access(2) for writing, which sees read-only mounts and user namespaces
// and writes nothing.
func tunables() []tunable {
	s := utilsysctl.New()
	var out []tunable
	for name, wanted := range desiredTunables {
		v, err := s.GetSysctl(name)
		if err != nil || v == wanted {
			continue
		}
		t := tunable{Name: name, Value: fmt.Sprint(v), Wanted: wanted, Writable: true}
		if err := unix.Access(filepath.Join("/proc/sys", name), unix.W_OK); err != nil {
			t.Writable = false
			t.WriteErr = fmt.Sprintf("open %s: %v", filepath.Join("/proc/sys", name), err)
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func cgroupReads() map[string]string {
	const root = "/sys/fs/cgroup"
	errs := map[string]string{}
	for _, f := range []string{"memory.max", "memory.swap.max", "pids.max"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			continue
		}
		if _, err := fscommon.GetCgroupParamUint(root, f); err != nil {
			errs[f] = err.Error()
		}
	}
	if _, err := os.Stat(filepath.Join(root, "cpu.max")); err == nil {
		if _, err := cm.LXCDoctorCgroupCPUConfig(root); err != nil {
			errs["cpu.max, cpu.weight"] = err.Error()
		}
	}
	if _, err := os.Stat(filepath.Join(root, "memory.max")); err == nil {
		if _, err := cm.LXCDoctorCgroupMemoryConfig(root); err != nil {
			errs["memory.max (cgroup manager)"] = err.Error()
		}
	}
	return errs
}

func env() environment {
	var e environment
	e.UserNamespace = userns.RunningInUserNS()
	if b, err := os.ReadFile("/proc/self/uid_map"); err == nil {
		e.UIDMap = strings.Join(strings.Fields(string(b)), " ")
	}
	e.CgroupV2 = cgroups.IsCgroup2UnifiedMode()
	if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		e.Controllers = strings.Fields(string(b))
	}
	if mounts, err := mountinfo.GetMounts(nil); err == nil {
		for _, m := range mounts {
			if m.Mountpoint == "/" {
				e.RootFsType = m.FSType
			}
			if strings.Contains(m.Source, "lxcfs") || m.FSType == "fuse.lxcfs" {
				e.LxcfsMounts++
			}
		}
	}
	for _, f := range []string{"/proc/self/attr/apparmor/current", "/proc/self/attr/current"} {
		if b, err := os.ReadFile(f); err == nil {
			e.AppArmor = strings.TrimSpace(strings.TrimRight(string(b), "\x00"))
			break
		}
	}
	if e.AppArmor == "" {
		e.AppArmor = "none"
	}
	if b, err := os.ReadFile("/proc/1/environ"); err == nil {
		for _, kv := range strings.Split(string(b), "\x00") {
			if v, ok := strings.CutPrefix(kv, "container="); ok {
				e.Container = v
			}
		}
	}
	return e
}
