// The kubelet-path bundle: per architecture, a tar.gz with the patched kubelet, the RKE2 config
// drop-in that points kubelet-path at it, a README, a POSIX installer and the checksums.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { archOf, type Platform } from '../manifest.js';
import type { PackagedFile } from '../stages/types.js';
import { packagedFile } from './packaged.js';
import { writeSumsFor } from '../stages/package/artifacts.js';
import { fileHash, writeFileAtomic } from '../lib/fsutil.js';
import { writeDeterministicTar, type TarEntry } from '../lib/tarball.js';
import { renderKubeletPathDropIn } from './config.js';
import { renderProxmoxConfig } from './lxc-settings.js';
import { assertElfArch } from '../lib/elf.js';
import {
  DROPIN_INSTALL_PATH,
  KUBELET_DROPIN_NAME,
  KUBELET_INSTALL_ROOT,
  ROLLBACK_STATE_DIR,
  bundleBaseName,
  bundleFileName,
  installedKubeletPath,
} from './names.js';

/** The installer shipped in every bundle (POSIX sh); kept as a file so `sh -n`/shellcheck read it as is. */
export const INSTALL_SCRIPT_PATH = fileURLToPath(new URL('./install.sh', import.meta.url));

/** The doctor in the bundle (the build stage's kubelet-lxc-doctor). */
export const DOCTOR_FILE = 'kubelet-lxc-doctor';

/** Files inside the bundle's top folder, besides SHA256SUMS, each listed in SHA256SUMS. */
export const BUNDLE_FILES = ['INSTALL', 'README.md', 'install.sh', 'kubelet', DOCTOR_FILE, KUBELET_DROPIN_NAME] as const;

export interface BundleOptions {
  /** Path of the patched kubelet for this platform. */
  kubelet: string;
  /** Path of kubelet-lxc-doctor, built from the same tree, for this platform. */
  doctor: string;
  platform: Platform;
  /** The stamped kubelet version (manifest stamp.version), e.g. v1.36.4+rke2r1. */
  version: string;
  /** The RKE2 release it is for (manifest rke2.version). */
  rke2Version: string;
  outDir: string;
  /** Fixed mtime of every entry (source date of the release). */
  mtime: Date;
}

/** The INSTALL file: key=value lines that install.sh and installBundle read (never evaluated). */
export function renderInstallFile(o: { version: string; rke2Version: string; platform: Platform }): string {
  return [
    '# kubelet-lxc bundle description, read by install.sh, which `kubelet-lxc install` runs too (key=value, never evaluated)',
    'format=1',
    `version=${o.version}`,
    `rke2_version=${o.rke2Version}`,
    `platform=${o.platform}`,
    `kubelet_path=${installedKubeletPath(o.version)}`,
    `dropin_path=${DROPIN_INSTALL_PATH}`,
    `dropin_file=${KUBELET_DROPIN_NAME}`,
    '',
  ].join('\n');
}

export function renderBundleReadme(o: { version: string; rke2Version: string; platform: Platform }): string {
  const base = bundleBaseName(o.version, o.platform);
  const file = bundleFileName(o.version, o.platform);
  const kubeletPath = installedKubeletPath(o.version);
  return `# kubelet-lxc ${o.version} (${o.platform}) for RKE2 ${o.rke2Version}

A kubelet patched to start inside LXC containers on cgroup v2 hosts (empty cgroup and sysfs
values no longer stop ContainerManager), and an RKE2 config drop-in that makes the RKE2 agent run
it through RKE2's \`kubelet-path\` option. Everything else (containerd, runc, kube-proxy, charts)
still comes from the RKE2 release.

## Contents

- \`kubelet\`: the patched kubelet; \`kubelet --version\` prints \`Kubernetes ${o.version}\`.
- \`${KUBELET_DROPIN_NAME}\`: the drop-in: \`kubelet-path\` plus the kubelet and kube-proxy flags an
  LXC node needs, each with its reason (some are commented out: read them).
- \`${DOCTOR_FILE}\`: run it on the node first (\`./${DOCTOR_FILE}\`, or \`--json\`): a static
  program built from the same tree that runs the kubelet's own start-path code and says whether
  the stock kubelet starts here, what this kubelet does instead, and the fix for each blocker.
  \`--kubelet-config FILE\` reads failSwapOn, protectKernelDefaults and featureGates from a kubelet
  configuration file; without it the kubelet's defaults are assumed.
- \`install.sh\`: the installer (POSIX sh; dash and busybox work; \`kubelet-lxc install\` runs it too).
- \`INSTALL\`: where things go (read by the installers). \`SHA256SUMS\`: digests of all of these.

## Where it installs

- \`${kubeletPath}\`: the kubelet. Under ${KUBELET_INSTALL_ROOT}, outside RKE2's data-dir,
  which \`rke2-uninstall.sh\` and \`rke2-killall.sh\` remove and whose location is configurable; one
  folder per version, so an install never rewrites the file a running kubelet was started from.
- \`${DROPIN_INSTALL_PATH}\`: the drop-in. Renaming it into place is the switch.
- \`${ROLLBACK_STATE_DIR}\`: what the last install replaced, for \`--rollback\`.

## Install

Keep \`${file}.sha256\` beside the bundle; both installers check it first, refuse archives with
absolute, \`..\` or link entries, check \`SHA256SUMS\`, run \`kubelet --version\`, back up what they
replace and install atomically.

    tar -xzf ${file} ${base}/install.sh
    sh ${base}/install.sh ${file}
    # or, with Node.js and kubelet-lxc: kubelet-lxc install ${file}
    systemctl restart rke2-agent    # rke2-server on server nodes

Undo the last install (restores the previous files byte for byte, removes what it added):

    sh ${base}/install.sh --rollback && systemctl restart rke2-agent

## The container

A container needs these lines in \`/etc/pve/lxc/<id>.conf\` on the Proxmox host (the container
restarted after), each below its reason; the project's lab runs its containers with exactly
these. First a privileged container (\`unprivileged: 0\`):

${indent(renderProxmoxConfig('privileged'))}

Then an unprivileged one (\`unprivileged: 1\`, Proxmox's default). The kubelet there also needs the
feature gate KubeletInUserNamespace: uncomment its line in the drop-in (\`kubelet-lxc-doctor\`
tells which case a node is).

${indent(renderProxmoxConfig('unprivileged'))}

## Upgrades

The kubelet must match the Kubernetes version of the RKE2 release on the node. When RKE2 is
upgraded, install the kubelet-lxc bundle of the new release (or roll back): RKE2's upgrade
controller waits for the node's kubeletVersion to equal the new version. Old version folders under
${KUBELET_INSTALL_ROOT} can be removed once no drop-in points at them.

## Without kubelet-path

The release also ships an RKE2 runtime image with this kubelet in /bin
(\`rke2-runtime-<tag>.linux-<arch>.tar.zst\` for \`/var/lib/rancher/rke2/agent/images/\`, and its
\`runtime-image:\` drop-in). Use one or the other, not both. Its reference is under the reserved
\`kubelet-lxc.invalid\` registry host, so RKE2 only ever loads it from that tarball; and it pins the
whole runtime image, so it must be replaced with every RKE2 upgrade.
`;
}

export async function buildKubeletPathBundle(opts: BundleOptions): Promise<PackagedFile[]> {
  const { platform, version, rke2Version, outDir, mtime } = opts;
  await assertElfArch(opts.kubelet, platform);
  await assertElfArch(opts.doctor, platform);
  const base = bundleBaseName(version, platform);
  const bundle = path.join(outDir, bundleFileName(version, platform));
  const dropIn = renderKubeletPathDropIn({ version, rke2Version, kubeletPath: installedKubeletPath(version) });

  await mkdir(outDir, { recursive: true });
  const work = await mkdtemp(path.join(outDir, `.bundle-${archOf(platform)}-`));
  try {
    const texts: Record<string, string> = {
      INSTALL: renderInstallFile({ version, rke2Version, platform }),
      'README.md': renderBundleReadme({ version, rke2Version, platform }),
      [KUBELET_DROPIN_NAME]: dropIn,
    };
    for (const [name, text] of Object.entries(texts)) await writeFile(path.join(work, name), text);
    const sources: Record<(typeof BUNDLE_FILES)[number], string> = {
      INSTALL: path.join(work, 'INSTALL'),
      'README.md': path.join(work, 'README.md'),
      'install.sh': INSTALL_SCRIPT_PATH,
      kubelet: opts.kubelet,
      [DOCTOR_FILE]: opts.doctor,
      [KUBELET_DROPIN_NAME]: path.join(work, KUBELET_DROPIN_NAME),
    };
    const sums: string[] = [];
    for (const name of [...BUNDLE_FILES].sort()) sums.push(`${await fileHash(sources[name])}  ${name}`);
    await writeFile(path.join(work, 'SHA256SUMS'), `${sums.join('\n')}\n`);

    const executable = new Set(['kubelet', 'install.sh', DOCTOR_FILE]);
    const entries: TarEntry[] = [
      ...BUNDLE_FILES.map((name) => ({ name: `${base}/${name}`, source: sources[name], mode: executable.has(name) ? 0o755 : 0o644 })),
      { name: `${base}/SHA256SUMS`, source: path.join(work, 'SHA256SUMS'), mode: 0o644 },
    ];
    await writeDeterministicTar(bundle, entries, { mtime, gzip: true });
  } finally {
    await rm(work, { recursive: true, force: true });
  }

  const sumFile = `${bundle}.sha256`;
  await writeSumsFor(bundle, sumFile);
  // Beside the bundle, for operators to read without unpacking; the same for every architecture.
  const snippet = path.join(outDir, KUBELET_DROPIN_NAME);
  if ((await readFile(snippet, 'utf8').catch(() => undefined)) !== dropIn) await writeFileAtomic(snippet, dropIn);

  return [
    await packagedFile(bundle, 'kubelet-path-bundle', platform),
    await packagedFile(sumFile, 'checksum', platform),
    await packagedFile(snippet, 'rke2-config-kubelet-path'),
  ];
}

/** Indents a text block by four spaces (a Markdown code block). */
function indent(text: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}
