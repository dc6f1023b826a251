// The LXC settings a container needs to run a kubelet: one list, rendered for operators
// (`kubelet-lxc proxmox-config`, the bundle README, the RKE2 drop-in's comment) and for the lab,
// whose container config gets these very lines (lab/lxc.conf.in, @OPERATOR_SETTINGS@). So what
// operators are told is what the lab tests.
//
// Two kinds of container: privileged (unprivileged: 0) and unprivileged (unprivileged: 1, Proxmox's
// default: an id map 0 -> 100000), each proved by the lab's profiles of that kind.

export interface LxcSetting {
  key: string;
  value: string;
  /** Why the kubelet needs it, one line. */
  why: string;
}

export const PRIVILEGED_LXC_SETTINGS: readonly LxcSetting[] = [
  {
    key: 'lxc.apparmor.profile',
    value: 'unconfined',
    why: "containerd and runc mount and set up their containers' own AppArmor confinement, which the default container profile denies",
  },
  {
    key: 'lxc.cgroup2.devices.allow',
    value: 'a',
    why: "the kubelet's containers get their device nodes (/dev/null, /dev/zero, ...) through runc, which the device controller must allow",
  },
  {
    key: 'lxc.cap.drop',
    value: '',
    why: 'keep every capability: LXC drops some by default (sys_module, sys_time, mac_admin, ...), and runc hands them on to privileged pods',
  },
  {
    key: 'lxc.mount.auto',
    value: 'proc:rw sys:rw',
    why: 'the kubelet and kube-proxy write /proc/sys tunables (vm.overcommit_memory, kernel.panic, net.*) at start',
  },
  {
    key: 'lxc.mount.entry',
    value: '/dev/kmsg dev/kmsg none bind,optional,create=file 0 0',
    why: "the kubelet's OOM watcher reads /dev/kmsg and the kubelet does not start without it",
  },
];

/**
 * What an unprivileged container needs beyond Proxmox's own unprivileged: 1 (which writes the id
 * map and LXC's userns.conf): the same as a privileged one less /dev/kmsg, which a user namespace
 * cannot read (the kernel checks CAP_SYSLOG in the host's namespace when dmesg_restrict is 1, as
 * on Debian and Proxmox); the kubelet's feature gate KubeletInUserNamespace stands in for it
 * (kubelet-lxc-doctor says so). The capabilities are already all kept by userns.conf.
 */
export const UNPRIVILEGED_LXC_SETTINGS: readonly LxcSetting[] = PRIVILEGED_LXC_SETTINGS.filter((s) => s.key !== 'lxc.mount.entry' && s.key !== 'lxc.cap.drop').map((s) =>
  s.key === 'lxc.mount.auto'
    ? { ...s, why: "kube-proxy writes the network namespace's own /proc/sys/net tunables at start (the host-wide ones stay the host's: a user namespace may not write them)" }
    : s,
);

/** Proxmox options (not lxc.* lines) of each kind, as /etc/pve/lxc/<id>.conf spells them. */
export const PROXMOX_OPTIONS: Readonly<Record<ContainerKind, readonly LxcSetting[]>> = {
  privileged: [{ key: 'unprivileged', value: '0', why: 'a privileged container: its root is the host\'s root' }],
  unprivileged: [
    { key: 'unprivileged', value: '1', why: "Proxmox's default: the container's ids 0-65535 are the host's 100000-165535 (a user namespace)" },
    {
      key: 'features',
      value: 'nesting=1,keyctl=1',
      why: 'nesting: runc mounts fresh proc and sysfs for every pod container, which a user namespace may only do where an unobstructed proc and sys are mounted; keyctl: runc gives each container its own session keyring',
    },
  ],
};

export type ContainerKind = 'privileged' | 'unprivileged';
export const CONTAINER_KINDS: readonly ContainerKind[] = ['privileged', 'unprivileged'];

/** The lxc.* settings of each kind (what operators add by hand). */
export function lxcSettings(kind: ContainerKind): readonly LxcSetting[] {
  return kind === 'privileged' ? PRIVILEGED_LXC_SETTINGS : UNPRIVILEGED_LXC_SETTINGS;
}

/** The id map's base and size of an unprivileged container, as Proxmox writes it. */
export const UNPRIVILEGED_ID_MAP = { base: 100000, size: 65536 } as const;

/**
 * The LXC lines Proxmox generates itself for an unprivileged container with nesting (pve-container:
 * the id map, LXC's userns.conf; nesting.conf mounts an unobstructed proc and sys under
 * /dev/.lxc), which the lab's container config must carry in their place since the lab has no
 * Proxmox. Not for operators: Proxmox writes them from the options above.
 */
export const PROXMOX_GENERATED_UNPRIVILEGED: readonly string[] = [
  'lxc.include = /usr/share/lxc/config/userns.conf',
  'lxc.include = /usr/share/lxc/config/nesting.conf',
  ...(['u', 'g'] as const).map((kind) => `lxc.idmap = ${kind} 0 ${UNPRIVILEGED_ID_MAP.base} ${UNPRIVILEGED_ID_MAP.size}`),
];

/** For /etc/pve/lxc/<id>.conf: each setting after a comment line with its reason (Proxmox takes no comment after a value). */
export function renderProxmoxConfig(kind: ContainerKind = 'privileged'): string {
  const lines = [
    `# kubelet-lxc: what a${kind === 'privileged' ? ' privileged' : 'n unprivileged'} container needs to run a kubelet;`,
    '# add to /etc/pve/lxc/<id>.conf on the Proxmox host, then restart the container.',
  ];
  if (kind === 'unprivileged') lines.push('# The kubelet needs the feature gate KubeletInUserNamespace=true here (kubelet-lxc-doctor checks it).');
  for (const s of [...PROXMOX_OPTIONS[kind], ...lxcSettings(kind)]) lines.push(`# ${s.why}`, `${s.key}:${s.value ? ` ${s.value}` : ''}`);
  return `${lines.join('\n')}\n`;
}

/** The lxc.* settings of a kind in LXC's own config syntax (key = value), as the lab's container config holds them. */
export function renderLxcConfig(kind: ContainerKind = 'privileged'): string {
  const generated = kind === 'unprivileged' ? `# what Proxmox writes for unprivileged: 1 and features: nesting=1\n${PROXMOX_GENERATED_UNPRIVILEGED.join('\n')}\n` : '';
  return generated + lxcSettings(kind).map((s) => `# ${s.why}\n${s.key} =${s.value ? ` ${s.value}` : ''}\n`).join('');
}

/** The placeholder in lab/lxc.conf.in that the lab fills with renderLxcConfig(). */
export const OPERATOR_SETTINGS_PLACEHOLDER = '@OPERATOR_SETTINGS@';
