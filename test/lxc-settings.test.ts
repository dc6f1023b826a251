// One list of container settings: what `kubelet-lxc proxmox-config` prints, what the bundle README
// and the RKE2 drop-in say, and what the lab's containers run with are the same lines.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../src/manifest.js';
import { labContainerConfig } from '../src/lab/index.js';
import { renderBundleReadme } from '../src/rke2/bundle.js';
import { renderKubeletPathDropIn } from '../src/rke2/config.js';
import { CONTAINER_KINDS, lxcSettings, PRIVILEGED_LXC_SETTINGS, PROXMOX_GENERATED_UNPRIVILEGED, PROXMOX_OPTIONS, renderProxmoxConfig } from '../src/rke2/lxc-settings.js';

const proxmoxLine = (s: { key: string; value: string }) => `${s.key}:${s.value ? ` ${s.value}` : ''}`;
const lxcLine = (s: { key: string; value: string }) => `${s.key} =${s.value ? ` ${s.value}` : ''}`;

describe('LXC settings for a kubelet', () => {
  it('proxmox-config: every setting of each kind once, below a comment with its reason, no comment after a value', async () => {
    for (const kind of CONTAINER_KINDS) {
      const text = renderProxmoxConfig(kind);
      const lines = text.trimEnd().split('\n');
      for (const l of lines) expect(l, l).toMatch(/^#|^(lxc\.[a-z0-9.]+|unprivileged|features):( [^#]+)?$/);
      for (const s of [...PROXMOX_OPTIONS[kind], ...lxcSettings(kind)]) {
        const at = lines.indexOf(proxmoxLine(s));
        expect(at, s.key).toBeGreaterThan(0);
        expect(lines.lastIndexOf(proxmoxLine(s))).toBe(at);
        expect(lines[at - 1]).toBe(`# ${s.why}`);
      }
    }
    // a user namespace cannot read /dev/kmsg: the unprivileged kind does without it (the feature gate instead)
    expect(renderProxmoxConfig('unprivileged')).not.toContain('/dev/kmsg');
    expect(renderProxmoxConfig('unprivileged')).toContain('KubeletInUserNamespace=true');
    expect(renderProxmoxConfig('privileged')).toContain('unprivileged: 0\n');
    expect(renderProxmoxConfig('unprivileged')).toContain('\nunprivileged: 1\n');
    expect(renderProxmoxConfig('unprivileged')).toContain('\nfeatures: nesting=1,keyctl=1\n');
    const cli = (...args: string[]) => execa(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'kubelet-lxc.js'), 'proxmox-config', ...args]);
    expect((await cli()).stdout).toBe(`${renderProxmoxConfig('privileged')}\n${renderProxmoxConfig('unprivileged')}`.trimEnd());
    expect((await cli('--kind', 'unprivileged')).stdout).toBe(renderProxmoxConfig('unprivileged').trimEnd());
    expect(JSON.parse((await cli('--json')).stdout)).toEqual({
      privileged: { proxmox: PROXMOX_OPTIONS.privileged, lxc: PRIVILEGED_LXC_SETTINGS, kubeletFeatureGates: {} },
      unprivileged: { proxmox: PROXMOX_OPTIONS.unprivileged, lxc: lxcSettings('unprivileged'), kubeletFeatureGates: { KubeletInUserNamespace: true } },
    });
    const bad = await execa(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'kubelet-lxc.js'), 'proxmox-config', '--kind', 'rootless'], { reject: false });
    expect(bad.exitCode).not.toBe(0);
    expect(bad.stderr).toMatch(/privileged, unprivileged/);
  });

  it('the lab runs its containers with these very settings, and its template holds no copy of its own', async () => {
    const template = await readFile(path.join(PROJECT_ROOT, 'lab', 'lxc.conf.in'), 'utf8');
    for (const kind of CONTAINER_KINDS) {
      const config = await labContainerConfig(kind);
      const active = config.split('\n').filter((l) => l && !l.startsWith('#'));
      for (const s of lxcSettings(kind)) {
        expect(active.filter((l) => l === lxcLine(s)), s.key).toHaveLength(1);
        // the only other lines with these keys are the lab's own mounts (state folders, the kubelets)
        if (s.key !== 'lxc.mount.entry') expect(active.filter((l) => l.startsWith(`${s.key} `)), s.key).toHaveLength(1);
        expect(template).not.toContain(lxcLine(s));
      }
      // what Proxmox itself writes for an unprivileged container, and only there
      for (const l of PROXMOX_GENERATED_UNPRIVILEGED) expect(active.includes(l), `${kind}: ${l}`).toBe(kind === 'unprivileged');
      expect(active.some((l) => l.includes('/dev/kmsg')), kind).toBe(kind === 'privileged');
      expect(config).not.toContain('@OPERATOR_SETTINGS@');
      // every line is LXC syntax (key = value): guest-main.sh fills in only @NAME@, @ROOTFS@, @RUNDIR@, @VARDIR@
      for (const l of active) expect(l).toMatch(/^lxc\.[a-z0-9.]+ =( .*)?$/);
    }
  });

  it('the bundle README and the RKE2 drop-in carry the same lines', () => {
    const readme = renderBundleReadme({ version: 'v1.36.4+rke2r1', rke2Version: 'v1.36.4+rke2r1', platform: 'linux/amd64' });
    for (const kind of CONTAINER_KINDS) for (const l of renderProxmoxConfig(kind).trimEnd().split('\n')) expect(readme).toContain(`    ${l}\n`);
    const dropIn = renderKubeletPathDropIn({ version: 'v1.36.4+rke2r1', rke2Version: 'v1.36.4+rke2r1', kubeletPath: '/usr/local/lib/kubelet-lxc/v1.36.4+rke2r1/kubelet' });
    for (const kind of CONTAINER_KINDS) for (const s of [...PROXMOX_OPTIONS[kind], ...lxcSettings(kind)]) expect(dropIn).toContain(`#   ${proxmoxLine(s)}\n`);
    expect(dropIn).toContain('kubelet-lxc proxmox-config');
  });
});
