#!/bin/sh
# PID 1 of the lab's LXC container (lxc.init.cmd). One run = one container = one
# kubelet under one fault profile: L1 a standalone kubelet with a static pod (below), L2 a
# server node with the control plane (ct-l2.sh). Reads /lab-run/run.env and /lab-run/profile.txt,
# writes everything it learns under /lab-run/out (guest-main.sh copies it to the host):
#   result.env       key=value facts the host turns into the report
#   events           "<epoch.ms> <event>" time line
#   shows-before.txt what the container shows at the fault sites before the profile
#   emptied.txt      "<bytes> <path>" for every file the profile must empty (before
#                    the kubelet starts), emptied-end.txt the same at the end
#   doctor.json      kubelet-lxc-doctor's prediction, made right before the kubelet starts
#                    (doctor.err its stderr; result.env doctor_exit its exit status)
#   kubelet.log, containerd.log, import.log, healthz.txt, tasks.txt
#   pods.json (last /pods answer while watching), pods-final.json (/pods at the end,
#   absent when the kubelet no longer answered)
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
R=/lab-run
O=$R/out
mkdir -p "$O"
exec >"$O/ct-init.log" 2>&1
. "$R/run.env"

now() { date +%s.%3N; }
ev() {
  echo "$(now) $*" >>"$O/events"
  # L2: the host follows the run through its control folder
  [ ! -d /lab-ctl ] || echo "$(now) $*" >>/lab-ctl/state
}
res() { echo "$1=$2" >>"$O/result.env"; }
finish() {
  res end_reason "$1"
  ev end "$1"
  sync
  exit 0
}
ev ct-init

# 1. What systemd does first in a Proxmox container: leave the cgroup namespace root
# (a non-root cgroup may not hold processes and delegate controllers at once) and
# enable every available controller for the children (kubepods).
mkdir -p /sys/fs/cgroup/init.scope
echo $$ >/sys/fs/cgroup/init.scope/cgroup.procs || finish setup-failed-cgroup
ctrls=""
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do ctrls="$ctrls +$c"; done
echo "$ctrls" >/sys/fs/cgroup/cgroup.subtree_control || finish setup-failed-cgroup
res cgroup_ns_root "$(cat /proc/1/cgroup)"

# 2. What the container shows at the fault sites, untouched.
show() {
  for f in "$@"; do
    if [ -e "$f" ]; then printf '%s\t%s\n' "$f" "$(head -c 200 "$f" 2>&1 | tr '\n' ' ')"; else printf '%s\t(missing)\n' "$f"; fi
  done
}
shows() {
  show /sys/fs/cgroup/cpuset.cpus /sys/fs/cgroup/cpuset.mems /sys/fs/cgroup/cpuset.cpus.effective \
    /sys/fs/cgroup/cpuset.mems.effective /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpu.weight /sys/fs/cgroup/pids.max \
    /sys/fs/cgroup/memory.max /sys/devices/system/cpu/online /sys/devices/system/cpu/cpu[0-9]*/topology/core_id \
    /sys/devices/system/cpu/cpu[0-9]*/topology/physical_package_id \
    /proc/sys/vm/overcommit_memory /proc/sys/vm/panic_on_oom /proc/sys/kernel/panic /proc/sys/kernel/panic_on_oops \
    /proc/sys/kernel/keys/root_maxkeys /proc/sys/kernel/keys/root_maxbytes /proc/sys/kernel/pid_max \
    /proc/sys/kernel/threads-max
  printf '/sys/devices/system/edac/mc\t%s\n' "$(ls /sys/devices/system/edac/mc 2>&1 | tr '\n' ' ')"
  printf 'mounts\t%s\n' "$(grep -cE 'lxcfs' /proc/self/mountinfo) lxcfs mounts"
  # lxcfs's CPU views beside the sysfs ones
  printf 'cpuinfo-processors\t%s\n' "$(grep -c ^processor /proc/cpuinfo)"
  printf 'proc-stat-cpus\t%s\n' "$(grep ^cpu /proc/stat | cut -d' ' -f1 | tr '\n' ' ')"
  printf 'nproc\t%s\n' "$(nproc)"
}
shows >"$O/shows-before.txt"

# 3. The fault profile. Every emptied file gets its own empty file (a write through
# one bind must not fill the others).
TAB=$(printf '\t')
n=0
applied=1
while IFS="$TAB" read -r kind a b; do
  case "$kind" in
    ''|'#'*) ;;
    empty)
      matched=0
      for f in $a; do
        [ -e "$f" ] || continue
        matched=1
        n=$((n + 1))
        : >"/run/lab-empty.$n"
        if mount --bind "/run/lab-empty.$n" "$f"; then ev "profile empty $f"; else applied=0; ev "profile FAILED empty $f"; fi
      done
      [ "$matched" = 1 ] || { applied=0; ev "profile FAILED no match $a"; }
      ;;
    tmpfs)
      if mount -t tmpfs -o mode=755,size=1m lab-fault "$a"; then ev "profile tmpfs $a"; else applied=0; ev "profile FAILED tmpfs $a"; fi
      ;;
    file)
      mkdir -p "$(dirname "$a")"
      if printf '%s' "$b" | base64 -d >"$a"; then ev "profile file $a"; else applied=0; ev "profile FAILED file $a"; fi
      ;;
    replace)
      matched=0
      for f in $a; do
        [ -e "$f" ] || continue
        matched=1
        n=$((n + 1))
        printf '%s' "$b" | base64 -d >"/run/lab-replace.$n"
        if mount --bind "/run/lab-replace.$n" "$f" && cmp -s "/run/lab-replace.$n" "$f"; then ev "profile replace $f"; else applied=0; ev "profile FAILED replace $f"; fi
      done
      [ "$matched" = 1 ] || { applied=0; ev "profile FAILED no match $a"; }
      ;;
    kubelet-config)
      # lines for the kubelet's configuration (added below, when the kubelet starts)
      printf '%s' "$a" | base64 -d >>/run/lab-kubelet-config.add || { applied=0; ev "profile FAILED kubelet-config"; }
      ev "profile kubelet-config"
      ;;
    emptied) ;;
    *) applied=0; ev "profile FAILED unknown action $kind" ;;
  esac
done <"$R/profile.txt"

check_emptied() {
  while IFS="$TAB" read -r kind a b; do
    [ "$kind" = emptied ] || continue
    matched=0
    for f in $a; do
      [ -e "$f" ] || continue
      matched=1
      echo "$(wc -c <"$f") $f"
    done
    [ "$matched" = 1 ] || echo "missing $a"
  done <"$R/profile.txt"
}
check_emptied >"$O/emptied.txt"
if grep -qv '^0 ' "$O/emptied.txt"; then applied=0; fi
res profile_applied "$applied"
shows >"$O/shows-after.txt"
[ "$applied" = 1 ] || finish profile-not-applied
ev profile-applied

# 4. containerd with the locally built images. In a user namespace (an unprivileged container)
# with what RKE2's containerd config template adds there (k3s: IsRunningInUserNS): runc may not
# lower a container's oom_score_adj, and the container cannot load AppArmor profiles.
mkdir -p /run/containerd /etc/kubernetes/manifests /var/log/pods
if [ "$(awk '{print $1, $2}' /proc/self/uid_map)" != "0 0" ]; then
  sed -i '/^\[plugins."io.containerd.grpc.v1.cri"\]$/a\  disable_apparmor = true\n  restrict_oom_score_adj = true' "$R/$CONTAINERD_CONFIG"
  res containerd_userns 1
fi
containerd --config "$R/$CONTAINERD_CONFIG" >"$O/containerd.log" 2>&1 &
i=0
until ctr version >/dev/null 2>&1; do
  i=$((i + 1))
  [ "$i" -le 120 ] || finish setup-failed-containerd
  sleep 0.5
done
ev containerd-ready
ctr -n k8s.io images import --all-platforms "$IMAGES" >"$O/import.log" 2>&1 || finish setup-failed-import
ctr -n k8s.io images ls -q >>"$O/import.log" 2>&1
ev images-imported

# What kubelet-lxc-doctor predicts in this container, with this kubelet configuration; run
# right before the kubelet (the host compares it with what the kubelet then does).
doctor() {
  ev doctor-started
  "$DOCTOR_BIN" --json --kubelet-config="$1" >"$O/doctor.json" 2>"$O/doctor.err"
  res doctor_exit "$?"
  ev doctor-done
}

# L2: a server node (control plane on kine, the kubelet registering); ends the run itself.
if [ "$LEVEL" = L2 ]; then
  . "$R/ct-l2.sh"
fi

# 5. The kubelet, standalone.
cp "$R/static-pod.yaml" /etc/kubernetes/manifests/lab-static.yaml
# the profile's own kubelet settings (e.g. protectKernelDefaults), after the lab's
cp "$R/kubelet-config.yaml" /etc/lab-kubelet-config.yaml
[ ! -f /run/lab-kubelet-config.add ] || cat /run/lab-kubelet-config.add >>/etc/lab-kubelet-config.yaml
# what a distribution's container template has (minbase lacks netbase's /etc/hosts)
printf '127.0.0.1\tlocalhost lab-node\n::1\tlocalhost ip6-localhost ip6-loopback\n' >/etc/hosts
: >/etc/resolv.conf
doctor /etc/lab-kubelet-config.yaml
"$KUBELET_BIN" --config=/etc/lab-kubelet-config.yaml --hostname-override=lab-node --v=2 >"$O/kubelet.log" 2>&1 &
KPID=$!
ev kubelet-started
res kubelet_pid "$KPID"

# 6. Watch: the run ends when the kubelet exits, when /healthz is ok and the static
# pod is Running for $SETTLE seconds in a row (a late crash still counts), or at the
# deadline.
start=$(date +%s)
ok_since=""
seen_health=0
seen_running=0
reason=deadline
while :; do
  t=$(date +%s)
  if ! kill -0 "$KPID" 2>/dev/null; then
    wait "$KPID"
    res kubelet_exit "$?"
    ev kubelet-exited
    reason=kubelet-exited
    break
  fi
  h=$(busybox wget -q -T 3 -O - http://127.0.0.1:10248/healthz 2>/dev/null)
  busybox wget -q -T 3 -O "$O/pods.json.tmp" http://127.0.0.1:10255/pods 2>/dev/null && mv "$O/pods.json.tmp" "$O/pods.json"
  running=0
  if [ -f "$O/pods.json" ] && grep -q '"phase":"Running"' "$O/pods.json" && grep -q '"running":{"startedAt"' "$O/pods.json"; then running=1; fi
  if [ "$h" = ok ] && [ "$seen_health" = 0 ]; then seen_health=1; ev healthz-ok; fi
  if [ "$running" = 1 ] && [ "$seen_running" = 0 ]; then seen_running=1; ev pod-running; fi
  if [ "$h" = ok ] && [ "$running" = 1 ]; then
    [ -n "$ok_since" ] || ok_since=$t
    if [ $((t - ok_since)) -ge "$SETTLE" ]; then reason=stable; break; fi
  else
    ok_since=""
  fi
  if [ $((t - start)) -ge "$DEADLINE" ]; then break; fi
  sleep 2
done

# 7. Final state.
if kill -0 "$KPID" 2>/dev/null; then res kubelet_alive_at_end 1; else res kubelet_alive_at_end 0; fi
h=$(busybox wget -q -T 3 -O - http://127.0.0.1:10248/healthz 2>/dev/null)
printf '%s\n' "$h" >"$O/healthz.txt"
busybox wget -q -T 3 -O "$O/pods-final.json" http://127.0.0.1:10255/pods 2>/dev/null || rm -f "$O/pods-final.json"
ctr -n k8s.io tasks ls >"$O/tasks.txt" 2>&1
ctr -n k8s.io containers ls >>"$O/tasks.txt" 2>&1
check_emptied >"$O/emptied-end.txt"
kill "$KPID" 2>/dev/null
sleep 1
kill -9 "$KPID" 2>/dev/null
finish "$reason"
