#!/usr/bin/env bash
# One setup for every CI: .ci/run and both GitHub workflows (ci.yml, release.yml) call this
# script, so what the pipeline, its tests and the lab need is listed once. Installs the Debian
# packages and starts a Docker engine. Idempotent: present packages and a running engine are
# left alone. Needs root (or sudo) on Debian 12 or newer.
#
#   scripts/ci-setup.sh
#
# Why each package:
#   docker.io containerd  the container engine (builder image, compiles in the container)
#   podman                the other engine --engine takes, tested for real (rootful) by
#                         test/podman.e2e.test.ts: builder image and a fixture pipeline build
#   zstd skopeo           RKE2 runtime image: .tar.zst air-gap tarball, image format checks
#   dash busybox          install.sh is tested under dash and busybox sh
#   (shellcheck)          the workflows' run: scripts (actionlint) and our shell scripts
#   qemu-user             smoke L0: the arm64 kubelet's --version on an amd64 host
#   file                  the real test's independent static-link check
#   git ca-certificates   sources and fixtures; zip unzip: Go module zips in tests
#   python3-venv          the SBOM test's spdx-tools
#   openssl               the L2 lab's per-run certificates
#   + scripts/lab-host-deps.sh: qemu-system-x86 (8 or newer), debootstrap, e2fsprogs, util-linux, keyring, gcc
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PKGS=(docker.io containerd podman zstd skopeo dash busybox shellcheck qemu-user file git ca-certificates zip unzip python3-venv openssl)

SUDO=()
[ "$(id -u)" = 0 ] || SUDO=(sudo)
export DEBIAN_FRONTEND=noninteractive

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "ci-setup: installing ${missing[*]}"
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "ci-setup: Debian packages present (${PKGS[*]})"
fi
sh "$here/lab-host-deps.sh"

# The Docker engine: overlay2 where the kernel allows it, else vfs (slower, works everywhere).
log=/var/log/kubelet-lxc-dockerd.log
if ! docker info >/dev/null 2>&1; then
  for driver in overlay2 vfs; do
    echo "ci-setup: starting dockerd (storage driver $driver, log $log)"
    ("${SUDO[@]}" dockerd --storage-driver "$driver" >"$log" 2>&1 &)
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 && break
    echo "ci-setup: dockerd with $driver did not start:" >&2
    tail -5 "$log" >&2 || true
    "${SUDO[@]}" pkill dockerd || true
    sleep 2
  done
fi
docker info --format 'ci-setup: engine {{.ServerVersion}}, storage {{.Driver}}, cgroup v{{.CgroupVersion}}' || {
  tail -20 "$log" >&2
  exit 1
}

# Podman (rootful): its storage driver is overlay where the kernel allows it (not on an overlay
# root file system, e.g. in a container), else vfs.
if ! podman info >/dev/null 2>&1; then
  echo "ci-setup: podman info fails with its default storage; using the vfs driver" >&2
  "${SUDO[@]}" mkdir -p /etc/containers
  printf '[storage]\ndriver = "vfs"\nrunroot = "/run/containers/storage"\ngraphroot = "/var/lib/containers/storage"\n' | "${SUDO[@]}" tee /etc/containers/storage.conf >/dev/null
fi
# not fatal here: the podman tests fail with podman's own error, the others still run
podman info --format 'ci-setup: podman {{.Version.Version}}, storage {{.Store.GraphDriverName}}, runtime {{.Host.OCIRuntime.Name}}' ||
  echo "ci-setup: podman does not work on this machine; test/podman.e2e.test.ts will fail saying why" >&2
