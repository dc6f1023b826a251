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
import { PRIVILEGED_LXC_SETTINGS, renderProxmoxConfig, UNPRIVILEGED_NOTE } from '../src/rke2/lxc-settings.js';

const proxmoxLine = (s: { key: string; value: string }) => `${s.key}:${s.value ? ` ${s.value}` : ''}`;
const lxcLine = (s: { key: string; value: string }) => `${s.key} =${s.value ? ` ${s.value}` : ''}`;

describe('LXC settings for a kubelet', () => {
  it('proxmox-config: every setting once, below a comment with its reason, no comment after a value', async () => {
    const text = renderProxmoxConfig();
    const lines = text.trimEnd().split('\n');
    for (const l of lines) expect(l, l).toMatch(/^#|^lxc\.[a-z0-9.]+:( [^#]+)?$/);
    for (const s of PRIVILEGED_LXC_SETTINGS) {
      const at = lines.indexOf(proxmoxLine(s));
      expect(at, s.key).toBeGreaterThan(0);
      expect(lines.lastIndexOf(proxmoxLine(s))).toBe(at);
      expect(lines[at - 1]).toBe(`# ${s.why}`);
    }
    const cli = await execa(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'kubelet-lxc.js'), 'proxmox-config']);
    expect(cli.stdout).toBe(`${text}#\n# ${UNPRIVILEGED_NOTE}`);
    const json = await execa(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'kubelet-lxc.js'), 'proxmox-config', '--json']);
    expect(JSON.parse(json.stdout)).toEqual({ privileged: PRIVILEGED_LXC_SETTINGS, unprivileged: null, note: UNPRIVILEGED_NOTE });
  });

  it('the lab runs its containers with these very settings, and its template holds no copy of its own', async () => {
    const template = await readFile(path.join(PROJECT_ROOT, 'lab', 'lxc.conf.in'), 'utf8');
    const config = await labContainerConfig();
    const active = config.split('\n').filter((l) => l && !l.startsWith('#'));
    for (const s of PRIVILEGED_LXC_SETTINGS) {
      expect(active.filter((l) => l === lxcLine(s)), s.key).toHaveLength(1);
      // the only other lines with these keys are the lab's own mounts (state folders, the kubelets)
      if (s.key !== 'lxc.mount.entry') expect(active.filter((l) => l.startsWith(`${s.key} `)), s.key).toHaveLength(1);
      expect(template).not.toContain(lxcLine(s));
    }
    expect(config).not.toContain('@OPERATOR_SETTINGS@');
    // every line is LXC syntax (key = value): guest-main.sh fills in only @NAME@, @ROOTFS@, @RUNDIR@, @VARDIR@
    for (const l of active) expect(l).toMatch(/^lxc\.[a-z0-9.]+ =( .*)?$/);
  });

  it('the bundle README and the RKE2 drop-in carry the same lines', () => {
    const readme = renderBundleReadme({ version: 'v1.36.4+rke2r1', rke2Version: 'v1.36.4+rke2r1', platform: 'linux/amd64' });
    for (const l of renderProxmoxConfig().trimEnd().split('\n')) expect(readme).toContain(`    ${l}\n`);
    const dropIn = renderKubeletPathDropIn({ version: 'v1.36.4+rke2r1', rke2Version: 'v1.36.4+rke2r1', kubeletPath: '/usr/local/lib/kubelet-lxc/v1.36.4+rke2r1/kubelet' });
    for (const s of PRIVILEGED_LXC_SETTINGS) expect(dropIn).toContain(`#   ${proxmoxLine(s)}\n`);
    expect(dropIn).toContain('kubelet-lxc proxmox-config');
  });
});
