#!/bin/sh
# Installs the host Debian packages the LXC lab (`kubelet-lxc lab`, smoke level L1) needs.
# Idempotent: packages already present are left alone and nothing is fetched for them.
#   qemu-system-x86   boots the guest (TCG when there is no KVM)
#   debootstrap       builds the guest root file system from Debian packages
#   e2fsprogs         mkfs.ext4 -d turns that tree into the guest disk image
#   util-linux        setpriv --pdeathsig: qemu dies with the lab process
#   debian-archive-keyring  verifies the trixie suite debootstrap fetches
set -eu
PKGS="qemu-system-x86 debootstrap e2fsprogs util-linux debian-archive-keyring"
missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing="$missing $p"
  fi
done
if [ -z "$missing" ]; then
  echo "lab-host-deps: all present ($PKGS)"
  exit 0
fi
echo "lab-host-deps: installing$missing"
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
