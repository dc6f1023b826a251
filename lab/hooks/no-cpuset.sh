#!/bin/sh
# lxc.hook.start-host: the container's cgroup is made and its init not yet started; take the
# cpuset controller away from the namespace root below it (lxc/<name>/ns), as on a host whose
# cgroup tree does not delegate cpuset to containers. Inside, /sys/fs/cgroup has no cpuset files
# and lxcfs finds no cpuset for the container's CPU views.
set -eu
cg=/sys/fs/cgroup/lxc/${LXC_NAME:?}
echo -cpuset >"$cg/cgroup.subtree_control"
echo "no-cpuset: $cg/cgroup.subtree_control now: $(cat "$cg/cgroup.subtree_control")" >&2
