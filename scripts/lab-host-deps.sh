#!/bin/sh
# Installs the host Debian packages the LXC lab (`kubelet-lxc lab`, smoke levels L1 and L2)
# needs. Idempotent: packages already present are left alone and nothing is fetched for them.
#   qemu-system-x86   boots the guest (TCG when KVM cannot run it); version 8 or newer
#   debootstrap       builds the guest root file system from Debian packages
#   e2fsprogs         mkfs.ext4 -d turns that tree into the guest disk image
#   util-linux        setpriv --pdeathsig: qemu dies with the lab process
#   debian-archive-keyring  verifies the trixie suite debootstrap fetches
#   gcc libc6-dev binutils  L2: the pause image's static program (build/pause/linux/pause.c), stripped
#
# QEMU: Debian 12's own QEMU 7.2 runs the guest under TCG, but its guest kernel crashed there
# now and then (a general protection fault in the slab allocator after about 20 minutes), which
# long L2 runs do not survive. On Debian 12 the lab takes QEMU from bookworm-backports (QEMU 10,
# built for Debian 12), from the machine's own Debian mirror.
set -eu
PKGS="qemu-system-x86 debootstrap e2fsprogs util-linux debian-archive-keyring gcc libc6-dev binutils"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

installed() { dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null | grep -q '^install ok installed$'; }
qemu_major() { qemu-system-x86_64 --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\)\..*/\1/p'; }

missing=""
for p in $PKGS; do installed "$p" || missing="$missing $p"; done
codename=$(sed -n "s/^VERSION_CODENAME=//p" /etc/os-release 2>/dev/null)
want_backports=""
if [ "$codename" = bookworm ] && [ "$(qemu_major || echo 0)" -lt 8 ] 2>/dev/null; then want_backports=1; fi
if [ -z "$missing" ] && [ -z "$want_backports" ]; then
  echo "lab-host-deps: all present ($PKGS; QEMU $(qemu_major))"
  exit 0
fi

if [ -n "$want_backports" ]; then
  # the machine's Debian mirror, as its own apt sources name it (deb822 or one-line)
  mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n 1)
  [ -n "$mirror" ] || mirror=$(sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\)[[:space:]]\+bookworm[[:space:]].*/\2/p' /etc/apt/sources.list 2>/dev/null | head -n 1)
  if [ -z "$mirror" ]; then
    echo "lab-host-deps: cannot find this machine's Debian mirror in /etc/apt to add bookworm-backports (for QEMU 8 or newer)" >&2
    exit 1
  fi
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "lab-host-deps: adding bookworm-backports from $mirror (QEMU for the lab guest)"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" |
      $SUDO tee /etc/apt/sources.list.d/kubelet-lxc-bookworm-backports.sources >/dev/null
  fi
fi

echo "lab-host-deps: installing$missing${want_backports:+ qemu-system-x86 from bookworm-backports}"
$SUDO apt-get update -qq
if [ -n "$missing" ]; then
  # shellcheck disable=SC2086
  $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
if [ -n "$want_backports" ]; then
  $SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-x86
fi
echo "lab-host-deps: QEMU $(qemu_major) ($(qemu-system-x86_64 --version | head -n 1))"
