// The LXC settings a container needs to run a kubelet: one list, rendered for operators
// (`kubelet-lxc proxmox-config`, the bundle README, the RKE2 drop-in's comment) and for the lab,
// whose container config gets these very lines (lab/lxc.conf.in, @OPERATOR_SETTINGS@). So what
// operators are told is what the lab tests.
//
// Privileged containers only: an unprivileged container (Proxmox's default, an id map 0 ->
// 100000) has not been run in the lab, so nothing is claimed for it.

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

/** For /etc/pve/lxc/<id>.conf: each setting after a comment line with its reason (Proxmox takes no comment after a value). */
export function renderProxmoxConfig(settings: readonly LxcSetting[] = PRIVILEGED_LXC_SETTINGS): string {
  const lines = [
    '# kubelet-lxc: what a privileged container (unprivileged: 0) needs to run a kubelet;',
    '# add to /etc/pve/lxc/<id>.conf on the Proxmox host, then restart the container.',
  ];
  for (const s of settings) lines.push(`# ${s.why}`, `${s.key}:${s.value ? ` ${s.value}` : ''}`);
  return `${lines.join('\n')}\n`;
}

/** The same settings in LXC's own config syntax (key = value), as the lab's container config holds them. */
export function renderLxcConfig(settings: readonly LxcSetting[] = PRIVILEGED_LXC_SETTINGS): string {
  return settings.map((s) => `# ${s.why}\n${s.key} =${s.value ? ` ${s.value}` : ''}\n`).join('');
}

/** What is said about unprivileged containers until the lab has run one. */
export const UNPRIVILEGED_NOTE = 'Unprivileged containers (unprivileged: 1, an id map 0 -> 100000) are not covered: the lab has not run one yet, so no settings are claimed for them.';

/** The placeholder in lab/lxc.conf.in that the lab fills with renderLxcConfig(). */
export const OPERATOR_SETTINGS_PLACEHOLDER = '@OPERATOR_SETTINGS@';
