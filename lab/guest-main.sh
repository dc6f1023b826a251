#!/bin/sh
# The lab guest's main script, started by /sbin/lab-init from the host's 9p share
# (mounted at /mnt/lab). It prepares the guest as a Proxmox-like cgroup v2 LXC host,
# then runs every line of /mnt/lab/runs.txt ("<id> <profile> <kubelet> <deadline-s>
# <settle-s> <level>") in a fresh LXC container and copies each run's results to
# /mnt/lab/out/<id>/. Progress goes to the console as "@@LAB <event> ..." lines, which
# the host reads. Ends by powering the guest off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
S=/mnt/lab
mkdir -p "$S/out"
exec >"$S/out/guest.log" 2>&1
set -x

mark() { echo "@@LAB $*" >/dev/console; }
bye() {
  sync
  mark poweroff
  busybox poweroff -f
  echo o >/proc/sysrq-trigger
  sleep 30
}
fatal() {
  mark fatal "$*"
  bye
}
mark guest-up "$(cut -d' ' -f1 /proc/uptime)"

# The guest as an LXC host: cgroup2 only (like Proxmox VE 7+), all controllers
# delegated to the children, lxcfs, a bridge for the container's veth.
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || fatal "cannot mount cgroup2"
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /run/lock /var/lib/lxc /var/lib/lxcfs /var/lab
for m in fuse overlay veth bridge; do modprobe "$m"; done
ctrls=""
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do ctrls="$ctrls +$c"; done
echo "$ctrls" >/sys/fs/cgroup/cgroup.subtree_control || fatal "cannot delegate cgroup controllers"
ip link set lo up
ip link add lxcbr0 type bridge && ip addr add 10.77.0.1/24 dev lxcbr0 && ip link set lxcbr0 up || fatal "cannot create lxcbr0"
lxcfs /var/lib/lxcfs >/run/lxcfs.log 2>&1 &
i=0
until [ -f /var/lib/lxcfs/proc/meminfo ]; do
  i=$((i + 1))
  [ "$i" -le 60 ] || fatal "lxcfs did not come up: $(cat /run/lxcfs.log)"
  sleep 0.5
done
mark lxcfs-up

# L2: the host reaches the container's apiserver through qemu's user network (a forwarded
# port on the host's loopback to this guest's 6443), passed on to the container.
# (qemu has a network device only for L2; without udev the interface appears a little after
# the module loads.)
has_virtio_net() {
  for d in /sys/bus/pci/devices/*; do
    case "$(cat "$d/vendor" 2>/dev/null):$(cat "$d/device" 2>/dev/null)" in 0x1af4:0x1000 | 0x1af4:0x1041) return 0 ;; esac
  done
  return 1
}
if has_virtio_net; then
  modprobe virtio_net
  nic=""
  i=0
  while [ -z "$nic" ] && [ "$i" -lt 50 ]; do
    # the interface with a device behind it (lo and the bridge have none)
    for n in /sys/class/net/*; do [ -e "$n/device" ] && nic=${n##*/}; done
    i=$((i + 1))
    [ -n "$nic" ] || sleep 0.2
  done
  [ -n "$nic" ] || fatal "the network device has no interface: $(ls /sys/class/net)"
  ip link set "$nic" up && ip addr add 10.0.2.15/24 dev "$nic" || fatal "cannot configure $nic"
  socat TCP-LISTEN:6443,bind=10.0.2.15,fork,reuseaddr TCP:10.77.0.2:6443 >/run/socat.log 2>&1 &
  mark net-up "$nic"
fi

# The kubelets come on a second, read-only disk (block I/O is far quicker than 9p
# under TCG); every container gets it bound at /opt/lab/kubelets.
mkdir -p /run/lab/kubelets
mount -t ext4 -o ro /dev/vdb /run/lab/kubelets || fatal "cannot mount the kubelet disk /dev/vdb"
mark kubelets-ready "$(cd /run/lab/kubelets && echo kubelet-*)"
# Cleanly read-only lower layer for the container's root.
mkdir -p /run/lab/lower
mount --bind / /run/lab/lower && mount -o remount,bind,ro /run/lab/lower || fatal "cannot bind the guest root"
# For the record (guest.log): the guest kernel's own view of the fault sites.
uname -a
cat /sys/devices/system/cpu/online /sys/devices/system/cpu/cpu*/topology/core_id
ls /sys/devices/system/edac/mc

mark runs "$(grep -c . "$S/runs.txt")"
while read -r id profile kubelet deadline settle level; do
  [ -n "$id" ] || continue
  level=${level:-L1}
  mark run-start "$id" "$profile" "$kubelet" "$level"
  RUN=/run/lab/runs/$id
  VAR=/var/lab/$id
  CT=/run/lab/ct/$id
  mkdir -p "$RUN/out" "$VAR/containerd" "$VAR/kubelet" "$CT/upper" "$CT/work" "$CT/rootfs"
  for f in ct-init.sh containerd.toml kubelet-config.yaml static-pod.yaml ct-l2.sh containerd-l2.toml kubelet-config-l2.yaml cni-bridge.conflist; do cp "$S/lab/$f" "$RUN/$f"; done
  cp "$S/profiles/$profile.txt" "$RUN/profile.txt"
  cat >"$RUN/run.env" <<EOF
RUN_ID=$id
PROFILE=$profile
KUBELET=$kubelet
KUBELET_BIN=/opt/lab/kubelets/kubelet-$kubelet
DOCTOR_BIN=/opt/lab/kubelets/kubelet-lxc-doctor
IMAGES=/opt/lab/images/lab-images.tar
CONTAINERD_CONFIG=containerd.toml
DEADLINE=$deadline
SETTLE=$settle
LEVEL=$level
EOF
  # L2: the host's settings for this run (images, datastore, ...) and its control folder
  ctl=""
  if [ "$level" = L2 ]; then
    cat "$S/l2/$id/run.env" >>"$RUN/run.env"
    ctl="lxc.mount.entry = $S/l2/$id lab-ctl none bind,create=dir 0 0"
    mkdir -p "$VAR/rancher"
  fi
  # An unprivileged container (profiles/<profile>.idmap: "<base> <size>", its own config): the
  # guest's root is seen through an id-mapped mount (root-owned files owned by the container's
  # root, <base>), and everything the container writes to belongs to <base> too.
  template=$S/lab/lxc.conf.in
  lower=/run/lab/lower
  idmap_failed=""
  if [ -f "$S/profiles/$profile.idmap" ]; then
    read -r idbase idsize <"$S/profiles/$profile.idmap"
    template=$S/profiles/$profile.conf.in
    lower=/run/lab/lower-$idbase
    if ! mountpoint -q "$lower"; then
      mkdir -p "$lower"
      if ! mount --bind -o "ro,X-mount.idmap=b:0:$idbase:$idsize" /run/lab/lower "$lower"; then
        # without the id-mapped root the container would start on an empty folder: end the run here
        echo "end_reason=idmap-failed" >>"$RUN/out/result.env"
        idmap_failed=1
      fi
    fi
    chown "$idbase:$idbase" "$CT/upper"
    chown -R "$idbase:$idbase" "$RUN" "$VAR"
    [ "$level" != L2 ] || chown -R "$idbase:$idbase" "$S/l2/$id"
  fi
  t0=$(date +%s.%3N)
  echo "$t0 container-start" >"$RUN/out/guest-events"
  if [ -n "$idmap_failed" ]; then
    : # the run ends without a container; result.env says why
  elif mount -t overlay lab-ct -o "lowerdir=$lower,upperdir=$CT/upper,workdir=$CT/work" "$CT/rootfs"; then
    mkdir -p /var/lib/lxc/lab
    sed -e "s|@NAME@|lab|g" -e "s|@ROOTFS@|$CT/rootfs|g" -e "s|@RUNDIR@|$RUN|g" -e "s|@VARDIR@|$VAR|g" \
      "$template" >/var/lib/lxc/lab/config
    # the profile's own container setup (sys:mixed, pinned CPUs, a cgroup hook), after the rest
    [ ! -f "$S/profiles/$profile.lxc" ] || cat "$S/profiles/$profile.lxc" >>/var/lib/lxc/lab/config
    if [ -n "$ctl" ]; then
      echo "$ctl" >>/var/lib/lxc/lab/config
      echo "lxc.mount.entry = $VAR/rancher var/lib/rancher none bind,create=dir 0 0" >>/var/lib/lxc/lab/config
    fi
    if lxc-start -n lab -l INFO -o "$RUN/out/lxc.log"; then
      if ! lxc-wait -n lab -s STOPPED -t $((deadline + 120)); then
        echo "$(date +%s.%3N) container-timeout" >>"$RUN/out/guest-events"
        echo "end_reason=container-timeout" >>"$RUN/out/result.env"
        lxc-stop -n lab -k
      fi
    else
      echo "$(date +%s.%3N) lxc-start-failed" >>"$RUN/out/guest-events"
      echo "end_reason=lxc-start-failed" >>"$RUN/out/result.env"
    fi
    umount "$CT/rootfs"
  else
    echo "end_reason=overlay-failed" >>"$RUN/out/result.env"
  fi
  echo "$(date +%s.%3N) container-stopped" >>"$RUN/out/guest-events"
  mkdir -p "$S/out/$id"
  cp -r "$RUN/out/." "$S/out/$id/"
  rm -rf "$RUN" "$VAR" "$CT"
  sync
  mark run-end "$id" "$(grep '^end_reason=' "$S/out/$id/result.env" | tail -n 1 | cut -d= -f2)"
done <"$S/runs.txt"

mark all-done
bye
