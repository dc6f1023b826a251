#!/usr/bin/env python3
"""Write ../site-tests.json (the stock-vs-patched test matrix) from the table
below; patch file names are looked up by number, so re-run it after
tools/regen.sh export renames a patch."""
import glob, json, os

pdir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
P = {os.path.basename(p)[:4]: os.path.basename(p) for p in glob.glob(os.path.join(pdir, "0*.patch"))}
CAD, K = "vendor/github.com/google/cadvisor/", "k8s.io/kubernetes/"

# (site, patch number, dir, package, test files in dir, -run regexp)
SITES = [
    ("A", "0005", CAD + "utils/sysinfo", "github.com/google/cadvisor/utils/sysinfo", ["lxc_site_a_test.go", "lxc_site_fake_test.go"], "^TestLXCSiteA_"),
    ("A", "0010", "pkg/kubelet/cadvisor", K + "pkg/kubelet/cadvisor", ["lxc_site_a_test.go"], "^TestLXCSiteA_"),
    ("B", "0004", CAD + "utils/sysfs", "github.com/google/cadvisor/utils/sysfs", ["lxc_site_b_test.go"], "^TestLXCSiteB_"),
    ("C", "0006", CAD + "machine", "github.com/google/cadvisor/machine", ["lxc_site_c_test.go"], "^TestLXCSiteC_"),
    ("D", "0011", CAD + "utils/sysinfo", "github.com/google/cadvisor/utils/sysinfo", ["lxc_site_d_test.go", "lxc_site_fake_test.go"], "^TestLXCSiteD_"),
    ("D", "0012", CAD + "machine", "github.com/google/cadvisor/machine", ["lxc_site_d_test.go"], "^TestLXCSiteD_"),
    ("F", "0013", "vendor/github.com/opencontainers/cgroups/fscommon", "github.com/opencontainers/cgroups/fscommon", ["lxc_site_f_test.go"], "^TestLXCSiteF_"),
    ("G", "0014", "pkg/kubelet/cm", K + "pkg/kubelet/cm", ["lxc_site_g_test.go"], "^TestLXCSiteG_"),
    ("H", "0007", "staging/src/k8s.io/component-helpers/node/util/sysctl", "k8s.io/component-helpers/node/util/sysctl", ["lxc_site_h_test.go"], "^TestLXCSiteH_"),
    ("H", "0008", "pkg/kubelet/cm", K + "pkg/kubelet/cm", ["lxc_site_h_test.go"], "^TestLXCSiteH_"),
    ("I", "0009", "pkg/kubelet/stats/pidlimit", K + "pkg/kubelet/stats/pidlimit", ["lxc_site_i_test.go"], "^TestLXCSiteI_"),
    ("J", "0015", "pkg/kubelet/apis/config/validation", K + "pkg/kubelet/apis/config/validation", ["lxc_site_j_test.go"], "^TestLXCSiteJ_"),
    ("J", "0015", "cmd/kubelet/app", K + "cmd/kubelet/app", ["lxc_site_j_test.go"], "^TestLXCSiteJ_"),
]
# Helper tests and TestLXCUnchanged* (normal values) in every package the
# series touches: every TestLXC* test that is not a site test.
UNIT_PKGS = [
    "github.com/google/cadvisor/utils/sysfs", "github.com/google/cadvisor/utils/sysinfo",
    "github.com/google/cadvisor/machine", "github.com/google/cadvisor/container/common",
    "github.com/opencontainers/cgroups/fscommon", "k8s.io/component-helpers/node/util/sysctl",
    K + "pkg/kubelet/cm", K + "pkg/kubelet/stats/pidlimit", K + "pkg/kubelet/cadvisor",
    K + "pkg/kubelet/apis/config/validation", K + "cmd/kubelet/app",
]
UPSTREAM = [
    "k8s.io/component-helpers/node/util/sysctl", K + "pkg/kubelet/cm", K + "pkg/kubelet/stats/pidlimit",
    K + "pkg/kubelet/cadvisor", K + "pkg/kubelet/apis/config/validation", K + "cmd/kubelet/app",
]

doc = {
    "seams": [P["0001"], P["0002"], P["0003"]],
    "siteTests": [{"site": s, "patch": P[n], "dir": d, "pkg": pkg, "testFiles": [d + "/" + f for f in files], "run": run}
                  for s, n, d, pkg, files, run in SITES],
    "unitTests": [{"pkg": p, "run": "^TestLXC[^S]"} for p in UNIT_PKGS],
    "upstreamPackages": UPSTREAM,
}
with open(os.path.join(pdir, "site-tests.json"), "w") as f:
    f.write(json.dumps(doc, indent=2) + "\n")
