# shellcheck shell=sh
# L2 part of the lab container's PID 1 (sourced by ct-init.sh once containerd runs with the
# images imported): the container becomes an RKE2-style *server* node. kine serves the cluster
# state from a SQLite file (RKE2's datastore with disable-etcd and a sqlite:// endpoint), the
# control plane runs on it, and the kubelet registers with the apiserver through a kubeconfig,
# restarted every 5 s when it exits, as RKE2's supervisor does.
#
# The host drives the checks and the conformance tests through the guest's forwarded port; it
# talks with this script through /lab-ctl (the run's folder on the host share):
#   in:  pki/ (certificates, kubeconfigs, made per run on the host), host-done (the host is done)
#   out: state ("<epoch> <event>" lines), facts.env (what the container shows: CPUs, memory),
#        cgroups.txt (every pod cgroup with cpu.max and memory.max, refreshed every 3 s),
#        kubelet-exits ("<epoch> <exit code>" per kubelet exit)
# Logs stay in $O (copied to the host when the run ends).
C=/lab-ctl
P=$C/pki
B=/opt/lab/kubelets
D=/var/lib/rancher/rke2/server
mkdir -p "$D/db" /etc/cni/net.d /var/lib/kubelet/volumeplugins
# (ev() in ct-init.sh also writes every event to $C/state)
state() { ev "$*"; }

# What the container shows the kubelet: CPUs it may use, memory lxcfs reports.
{
  echo "nproc=$(nproc)"
  echo "cpuset_effective=$(cat /sys/fs/cgroup/cpuset.cpus.effective 2>/dev/null)"
  echo "cpu_online=$(cat /sys/devices/system/cpu/online 2>/dev/null)"
  echo "memtotal_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)"
  echo "memory_max=$(cat /sys/fs/cgroup/memory.max 2>/dev/null)"
} >"$C/facts.env"

cp "$R/cni-bridge.conflist" /etc/cni/net.d/10-bridge.conflist

# 1. kine on SQLite, on a unix socket as RKE2 runs it in kine mode.
"$B/kine" --endpoint "$DATASTORE" --listen-address "unix://$D/kine.sock" >"$O/kine.log" 2>&1 &
i=0
until [ -S "$D/kine.sock" ]; do
  i=$((i + 1))
  [ "$i" -le 120 ] || { state setup-failed-kine; finish setup-failed-kine; }
  sleep 0.5
done
state kine-ready

# 2. The control plane (flags as an RKE2 server gives them, less what needs etcd or a cloud).
"$B/kube-apiserver" \
  --etcd-servers="unix://$D/kine.sock" \
  --storage-backend=etcd3 \
  --advertise-address="$NODE_IP" --bind-address=0.0.0.0 --secure-port=6443 \
  --tls-cert-file="$P/apiserver.crt" --tls-private-key-file="$P/apiserver.key" \
  --client-ca-file="$P/ca.crt" \
  --kubelet-client-certificate="$P/apiserver-kubelet-client.crt" --kubelet-client-key="$P/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types=InternalIP,Hostname \
  --service-cluster-ip-range="$SERVICE_CIDR" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-account-key-file="$P/sa.pub" --service-account-signing-key-file="$P/sa.key" \
  --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
  --allow-privileged=true --profiling=false --endpoint-reconciler-type=lease \
  >"$O/kube-apiserver.log" 2>&1 &
APID=$!
# readyz-waits.log: when each readiness check the apiserver still failed changed (where its start
# spends the time)
i=0
waiting=-
until curl -sk --max-time 5 'https://127.0.0.1:6443/readyz?verbose' >"$O/readyz.txt" 2>&1 && grep -qx 'readyz check passed' "$O/readyz.txt"; do
  failing=$(grep '^\[-\]' "$O/readyz.txt" | cut -d' ' -f1 | tr '\n' ' ')
  [ "$failing" = "$waiting" ] || { waiting=$failing; echo "$(now) ${failing:-(no answer)}" >>"$O/readyz-waits.log"; }
  i=$((i + 1))
  kill -0 "$APID" 2>/dev/null || { state setup-failed-apiserver; finish setup-failed-apiserver; }
  [ "$i" -le "$APISERVER_BUDGET" ] || { state setup-failed-apiserver; finish setup-failed-apiserver; }
  sleep 1
done
echo "$(now) ready" >>"$O/readyz-waits.log"
state apiserver-ready
"$B/kube-controller-manager" \
  --kubeconfig="$P/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$P/controller-manager.kubeconfig" --authorization-kubeconfig="$P/controller-manager.kubeconfig" \
  --service-account-private-key-file="$P/sa.key" --root-ca-file="$P/ca.crt" \
  --cluster-signing-cert-file="$P/ca.crt" --cluster-signing-key-file="$P/ca.key" \
  --use-service-account-credentials=true --leader-elect=false --profiling=false \
  --bind-address=127.0.0.1 --v=2 \
  >"$O/kube-controller-manager.log" 2>&1 &
"$B/kube-scheduler" \
  --kubeconfig="$P/scheduler.kubeconfig" \
  --authentication-kubeconfig="$P/scheduler.kubeconfig" --authorization-kubeconfig="$P/scheduler.kubeconfig" \
  --leader-elect=false --profiling=false --bind-address=127.0.0.1 \
  >"$O/kube-scheduler.log" 2>&1 &
state control-plane-started

# 3. The kubelet, registering with the apiserver; restarted 5 s after it exits, as RKE2 does.
cp "$R/kubelet-config-l2.yaml" /etc/kubelet-config.yaml
[ ! -f /run/lab-kubelet-config.add ] || cat /run/lab-kubelet-config.add >>/etc/kubelet-config.yaml
echo "127.0.0.1 localhost" >/etc/hosts
echo "$NODE_IP $NODE_NAME" >>/etc/hosts
: >/etc/resolv.conf
doctor /etc/kubelet-config.yaml
(
  n=0
  while :; do
    n=$((n + 1))
    echo "$(now) start $n" >>"$C/kubelet-starts"
    "$KUBELET_BIN" --config=/etc/kubelet-config.yaml --kubeconfig="$P/kubelet.kubeconfig" \
      --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" \
      --volume-plugin-dir=/var/lib/kubelet/volumeplugins --file-check-frequency=5s --sync-frequency=30s \
      --v=2 >>"$O/kubelet.log" 2>&1
    echo "$(now) $?" >>"$C/kubelet-exits"
    [ -f "$C/host-done" ] && exit 0
    sleep 5
  done
) &
SUPERVISOR=$!
state kubelet-started

# 4. Until the host is done (or the deadline): every pod cgroup with its limits, for the host.
snapshot() {
  for d in /sys/fs/cgroup/kubepods*/pod* /sys/fs/cgroup/kubepods*/*/pod* /sys/fs/cgroup/kubepods*/pod*/* /sys/fs/cgroup/kubepods*/*/pod*/*; do
    [ -d "$d" ] || continue
    printf '%s\t%s\t%s\n' "${d#/sys/fs/cgroup/}" "$(cat "$d/cpu.max" 2>/dev/null)" "$(cat "$d/memory.max" 2>/dev/null)"
  done >"$C/cgroups.txt.tmp"
  mv "$C/cgroups.txt.tmp" "$C/cgroups.txt"
}
start=$(date +%s)
reason=deadline
while :; do
  snapshot
  if [ -f "$C/host-done" ]; then
    reason=host-done
    break
  fi
  [ $(($(date +%s) - start)) -lt "$DEADLINE" ] || break
  sleep 3
done
state "watch-ended $reason"

# 5. Final state, then everything down (the kubelet first, as a node shuts down).
res l2_end_reason "$reason"
res kubelet_starts "$(cat "$C/kubelet-starts" 2>/dev/null | grep -c .)"
res kubelet_exits "$(cat "$C/kubelet-exits" 2>/dev/null | grep -c .)"
touch "$C/host-done"
pkill -TERM -f "$KUBELET_BIN" 2>/dev/null
sleep 1
kill "$SUPERVISOR" 2>/dev/null
pkill -KILL -f "$KUBELET_BIN" 2>/dev/null
ctr -n k8s.io tasks ls >"$O/tasks.txt" 2>&1
ctr -n k8s.io containers ls >>"$O/tasks.txt" 2>&1
check_emptied >"$O/emptied-end.txt"
for p in kube-scheduler kube-controller-manager kube-apiserver kine; do pkill -TERM -f "$B/$p" 2>/dev/null; done
sleep 1
finish "$reason"
