#!/bin/sh
# Run the upstream tests of the vendored packages the series touches.
#
#   tools/upstream-vendored.sh TREE
#
# TREE is a SCRATCH checkout of v1.35.4 (with or without the series): this
# script writes into its vendor/ directory. cAdvisor's and
# opencontainers/cgroups' _test.go files are not vendored, so they are
# copied, with their testdata and cAdvisor's fakesysfs test package, from
# the module cache (cadvisor v0.53.0, cgroups v0.0.3, the versions in
# vendor/modules.txt) and run against the tree's vendored (patched) code.
set -eu
T=$1
export GOTOOLCHAIN=go1.25.9 GOFLAGS="-mod=vendor -trimpath" CGO_ENABLED=0
MC=$(cd "$T" && go env GOMODCACHE)
M=$MC/github.com/google/cadvisor@v0.53.0
C=$MC/github.com/opencontainers/cgroups@v0.0.3
[ -d "$M" ] || (cd "$T" && GOFLAGS=-mod=mod go mod download github.com/google/cadvisor@v0.53.0)
[ -d "$C" ] || (cd "$T" && GOFLAGS=-mod=mod go mod download github.com/opencontainers/cgroups@v0.0.3)
V=$T/vendor/github.com
for p in utils/sysfs utils/sysinfo machine container/common; do
	cp "$M/$p"/*_test.go "$V/google/cadvisor/$p/"
	for d in "$M/$p"/testdata* "$M/$p/test_resources"; do
		if [ -d "$d" ]; then cp -r "$d" "$V/google/cadvisor/$p/"; fi
	done
done
cp -r "$M/utils/sysfs/fakesysfs" "$V/google/cadvisor/utils/sysfs/"
cp "$C/fscommon"/*_test.go "$V/opencontainers/cgroups/fscommon/"
chmod -R u+w "$V/google/cadvisor" "$V/opencontainers/cgroups"
# fakesysfs must be listed for -mod=vendor to import it.
grep -q 'cadvisor/utils/sysfs/fakesysfs$' "$T/vendor/modules.txt" ||
	sed -i 's|^github.com/google/cadvisor/utils/sysfs$|&\ngithub.com/google/cadvisor/utils/sysfs/fakesysfs|' "$T/vendor/modules.txt"
cd "$T"
go test -count=1 github.com/google/cadvisor/utils/sysfs github.com/google/cadvisor/utils/sysinfo \
	github.com/google/cadvisor/machine github.com/google/cadvisor/container/common \
	github.com/opencontainers/cgroups/fscommon
