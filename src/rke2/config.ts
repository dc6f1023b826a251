// The RKE2 config drop-ins shipped with the kubelet: kubelet-path (bundle) or runtime-image (image),
// plus the flags an LXC node needs, each with the reason. These are the neighbouring blockers
// that existing flags already handle, so they are recommended here, not patched.
import { DROPIN_INSTALL_PATH, RUNTIME_IMAGE_DROPIN_PATH, resolvesNowhere } from './names.js';
import { lxcSettings, PROXMOX_OPTIONS } from './lxc-settings.js';

export interface LxcArg {
  /** `key=value` as RKE2 passes it to the component. */
  arg: string;
  /** Why, one sentence per line. */
  why: string[];
  /** Recommended for every LXC node (active), or only in the situation named in `why` (commented out). */
  active: boolean;
}

export const LXC_KUBELET_ARGS: LxcArg[] = [
  {
    arg: 'fail-swap-on=false',
    why: [
      "lxcfs shows the host's swap in the container's /proc/swaps, and the kubelet refuses to start",
      'on a node with swap unless told not to. RKE2 (through k3s) has passed it by default; it is',
      'kept here so that the node does not depend on that default.',
    ],
    active: true,
  },
  {
    arg: 'local-storage-capacity-isolation=false',
    why: [
      "Only when the container's root file system is on ZFS (e.g. Proxmox local-zfs): the kubelet's",
      'statfs-based ephemeral-storage accounting fails there. It turns off ephemeral-storage limits',
      'and evictions on this node, so leave it commented out on ext4, xfs or LVM-thin.',
    ],
    active: false,
  },
  {
    arg: 'feature-gates+=KubeletInUserNamespace=true',
    why: [
      'Only in an unprivileged container (a user namespace, Proxmox unprivileged: 1): tolerate the',
      'sysctl writes and the /dev/kmsg access such a container is denied; without it the kubelet',
      'exits at "open /dev/kmsg" (the lab runs both cases). Off by default before Kubernetes 1.37',
      '(alpha), on since (beta; the line then only makes it explicit); inert outside a user',
      'namespace. Not needed in a privileged container.',
      '"+=" adds the gate to the --feature-gates RKE2 sets itself instead of replacing them.',
    ],
    active: false,
  },
];

export const LXC_KUBE_PROXY_ARGS: LxcArg[] = [
  {
    arg: 'conntrack-max-per-core=0',
    why: ['kube-proxy sets net.netfilter.nf_conntrack_max, which is read-only inside a container;', "0 leaves the host's value alone."],
    active: true,
  },
];

function argBlock(key: string, args: LxcArg[]): string[] {
  const out = [`${key}:`];
  for (const a of args) {
    for (const w of a.why) out.push(`  # ${w}`);
    out.push(`${a.active ? '  ' : '  # '}- ${a.arg}`);
  }
  return out;
}

function lxcBlock(): string[] {
  return [
    '# Flags an LXC node needs. The "+" appends to the same key in config.yaml and other drop-ins',
    '# instead of replacing it; RKE2 merges these args key by key after its own defaults.',
    '# WARNING: a drop-in read after this one (a later name in config.yaml.d/) that sets a plain',
    '# "kubelet-arg:" or "kube-proxy-arg:" (no "+") replaces these lists, and the LXC flags are gone:',
    '# use "kubelet-arg+:" and "kube-proxy-arg+:" there too.',
    ...argBlock('kubelet-arg+', LXC_KUBELET_ARGS),
    '',
    ...argBlock('kube-proxy-arg+', LXC_KUBE_PROXY_ARGS),
    '',
    '# Not flags: what the container itself needs (Proxmox: /etc/pve/lxc/<id>.conf;',
    '# kubelet-lxc proxmox-config prints them with their reasons). A privileged container:',
    ...[...PROXMOX_OPTIONS.privileged, ...lxcSettings('privileged')].map((s) => `#   ${s.key}:${s.value ? ` ${s.value}` : ''}`),
    '# An unprivileged container (with the feature gate above uncommented):',
    ...[...PROXMOX_OPTIONS.unprivileged, ...lxcSettings('unprivileged')].map((s) => `#   ${s.key}:${s.value ? ` ${s.value}` : ''}`),
  ];
}

export function renderKubeletPathDropIn(o: { version: string; rke2Version: string; kubeletPath: string }): string {
  return [
    `# kubelet-lxc ${o.version} for RKE2 ${o.rke2Version}: RKE2 agent config drop-in.`,
    `# Installed as ${DROPIN_INSTALL_PATH} by the bundle's installer;`,
    '# takes effect when rke2-agent (rke2-server on server nodes) restarts.',
    '#',
    "# kubelet-path (experimental RKE2 option) runs this kubelet instead of the runtime image's.",
    '# Everything else (containerd, runc, charts) still comes from the RKE2 release and follows its',
    '# upgrades. The kubelet must match the Kubernetes version of the installed RKE2 release: after',
    '# an RKE2 upgrade install the matching kubelet-lxc bundle (the upgrade controller waits for the',
    "# node's kubeletVersion to equal the plan's version), or roll back.",
    `kubelet-path: ${o.kubeletPath}`,
    '',
    ...lxcBlock(),
    '',
  ].join('\n');
}

export function renderRuntimeImageDropIn(o: { targetRef: string; rke2Version: string; imageFiles: string[]; standIn: boolean }): string {
  return [
    ...(o.standIn
      ? [
          '# !!! STAND-IN IMAGE: built FROM a generated stand-in, not rancher/rke2-runtime. It has no real',
          '# !!! containerd/runc/charts. For tests only: never put it on a node.',
        ]
      : []),
    `# RKE2 ${o.rke2Version} runtime image with the kubelet-lxc kubelet: RKE2 agent config drop-in.`,
    `# Put ${o.imageFiles.join(' or ')} (the one for the node's architecture)`,
    '# in /var/lib/rancher/rke2/agent/images/, this file in',
    `# ${RUNTIME_IMAGE_DROPIN_PATH},`,
    '# then restart rke2-agent (rke2-server on server nodes).',
    '# The image is FROM the release\'s rancher/rke2-runtime with only /bin/kubelet replaced. Do not also',
    "# set kubelet-path: it would run another kubelet than the image's. A rebuilt image gets a new -lxcN",
    '# tag, because RKE2 never extracts the same reference twice.',
    '#',
    '# UPGRADES: this drop-in pins the whole runtime image. After an RKE2 upgrade the node still runs',
    "# this image's kubelet, containerd and runc, of the old release, next to the new release's",
    '# control plane. With every RKE2 upgrade install the matching kubelet-lxc runtime image and',
    "# drop-in, or remove this file before upgrading (the node then runs the new release's stock",
    '# kubelet, which does not start in an LXC container).',
    '#',
    ...(resolvesNowhere(o.targetRef)
      ? [
          `# The registry host ${o.targetRef.split('/')[0]} is reserved (.invalid, RFC 6761) and never resolves:`,
          '# RKE2 can only take this image from the tarball in agent/images/. If the tarball is missing the',
          '# agent fails to start instead of pulling an image of this name from a registry. (A registries.yaml',
          "# mirror for \"*\" would be asked for it: that is your own registry.)",
        ]
      : [
          `# WARNING: if the tarball is missing from agent/images/, RKE2 pulls ${o.targetRef} from its registry:`,
          '# whoever controls that name then supplies the kubelet, containerd and runc of this node.',
        ]),
    `runtime-image: ${o.targetRef}`,
    '',
    ...lxcBlock(),
    '',
  ].join('\n');
}
