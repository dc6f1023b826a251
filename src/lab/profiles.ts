// Fault profiles: data in lab/profiles.json, validated here, resolved (include), and
// compiled into the line format lab/ct-init.sh reads inside the container.
import { readFileSync } from 'node:fs';
import { schemaProblems, z } from '../lib/schema.js';
import { labFile } from './paths.js';

// Paths and globs are used unquoted by the container's shell (globs must expand):
// allow only characters that cannot split words or run anything.
const pathLike = z.string().regex(/^\/[A-Za-z0-9_./[\]*?-]+$/, 'an absolute path or glob of [A-Za-z0-9_./[]*?-]');
const plainPath = z.string().regex(/^\/[A-Za-z0-9_./-]+$/, 'an absolute path of [A-Za-z0-9_./-]');

const actionSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('empty'), glob: pathLike }),
  z.object({ kind: z.literal('tmpfs'), path: plainPath }),
  z.object({ kind: z.literal('file'), path: plainPath, content: z.string() }),
  // a file with this content bound over every match (a kernel file reading garbage, not empty)
  z.object({ kind: z.literal('replace'), glob: pathLike, content: z.string().min(1) }),
]);
export type ProfileAction = z.infer<typeof actionSchema>;

// An LXC configuration line as `kubelet-lxc proxmox-config` writes them (key = value), of
// characters that cannot escape the line.
const lxcLine = z.string().regex(/^lxc\.[a-z0-9_.-]+ = [A-Za-z0-9_.:,/=+ -]*$/, 'an LXC line "lxc.<key> = <value>" of [A-Za-z0-9_.:,/=+ -]');

const expectSchema = z.object({
  stock: z.object({
    fails: z.boolean(),
    /** upstream error texts the stock kubelet's log must all contain when it fails */
    errors: z.array(z.string().min(1)).optional(),
    reason: z.string().min(1),
  }),
  /**
   * The patched kubelet: it passes every profile of an empty value (the default). A profile of a
   * failure the series must leave alone (garbage, not empty) expects it to fail as stock does,
   * with the same decisive error.
   */
  patched: z.object({ fails: z.literal(true), sameErrorAsStock: z.literal(true), errors: z.array(z.string().min(1)).min(1), reason: z.string().min(1) }).optional(),
});

export const profileSchema = z.object({
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/),
  description: z.string().min(1),
  sites: z.array(z.string()),
  include: z.array(z.string()).optional(),
  actions: z.array(actionSchema),
  emptied: z.array(pathLike),
  /** lines added to the kubelet's configuration for this profile (e.g. protectKernelDefaults: true) */
  kubeletConfig: z
    .record(z.string().regex(/^[a-zA-Z]+$/), z.union([z.boolean(), z.number(), z.string().regex(/^[A-Za-z0-9_.-]*$/), z.record(z.string().regex(/^[A-Za-z0-9]+$/), z.boolean())]))
    .optional(),
  /** no fault: stock and patched must report identical node facts (the series changes nothing on a normal host) */
  neutral: z.boolean().optional(),
  /**
   * How the container itself is set up, not a file planted in it: LXC lines added to its
   * configuration after the operator settings (so they win), e.g. a sys:mixed mount, pinned
   * CPUs, or a start-host hook from lab/hooks/ (found in the guest under /mnt/lab/lab/hooks/).
   * unprivileged: the container of Proxmox's unprivileged: 1 (an id map 0 -> 100000) with the
   * unprivileged operator settings instead of the privileged ones.
   */
  container: z
    .object({ lxc: z.array(lxcLine).optional(), unprivileged: z.boolean().optional() })
    .refine((c) => (c.lxc?.length ?? 0) > 0 || c.unprivileged !== undefined, 'container needs lxc lines or unprivileged')
    .optional(),
  expect: expectSchema,
});
export type ProfileDef = z.infer<typeof profileSchema>;

export const profilesFileSchema = z.object({
  $comment: z.string().optional(),
  profiles: z.array(profileSchema).min(1),
});

/** A profile with its includes resolved: the actions and emptied globs it really applies. */
export interface LabProfile {
  id: string;
  description: string;
  sites: string[];
  actions: ProfileAction[];
  emptied: string[];
  kubeletConfig: Record<string, boolean | number | string | Record<string, boolean>>;
  neutral: boolean;
  /** an unprivileged container (Proxmox unprivileged: 1) */
  unprivileged: boolean;
  /** LXC lines added to the container's configuration (the profile's own; not included) */
  lxc: string[];
  expect: ProfileDef['expect'];
}

/** Validates the profile file's content and resolves includes (no cycles, no unknown ids). */
export function parseProfiles(data: unknown): LabProfile[] {
  const checked = schemaProblems(profilesFileSchema, data);
  if (!checked.value) throw new Error(`invalid lab profiles (lab/profiles.json): ${checked.problems.join('; ')}`);
  const parsed = checked.value;
  const byId = new Map<string, ProfileDef>();
  for (const p of parsed.profiles) {
    if (byId.has(p.id)) throw new Error(`profile ${p.id} is defined twice`);
    byId.set(p.id, p);
  }
  const resolve = (p: ProfileDef, stack: string[]): { actions: ProfileAction[]; emptied: string[] } => {
    if (stack.includes(p.id)) throw new Error(`profile include cycle: ${[...stack, p.id].join(' -> ')}`);
    const actions: ProfileAction[] = [];
    const emptied: string[] = [];
    for (const inc of p.include ?? []) {
      const q = byId.get(inc);
      if (!q) throw new Error(`profile ${p.id} includes unknown profile ${inc}`);
      const r = resolve(q, [...stack, p.id]);
      actions.push(...r.actions);
      emptied.push(...r.emptied);
    }
    actions.push(...p.actions);
    emptied.push(...p.emptied);
    return { actions, emptied: [...new Set(emptied)] };
  };
  return parsed.profiles.map((p) => {
    const r = resolve(p, []);
    return { id: p.id, description: p.description, sites: p.sites, actions: r.actions, emptied: r.emptied, kubeletConfig: p.kubeletConfig ?? {}, neutral: p.neutral ?? false, lxc: p.container?.lxc ?? [], unprivileged: p.container?.unprivileged ?? false, expect: p.expect };
  });
}

let cached: LabProfile[] | undefined;

/** The lab's profiles, from lab/profiles.json. */
export function loadProfiles(): LabProfile[] {
  cached ??= parseProfiles(JSON.parse(readFileSync(labFile('profiles.json'), 'utf8')));
  return cached;
}

/** The ids of the lab's profiles, in matrix order. */
export const LAB_PROFILE_IDS: readonly string[] = Object.freeze(loadProfiles().map((p) => p.id));

/** Picks profiles by id, in the file's order; unknown ids are an error. */
export function selectProfiles(all: LabProfile[], ids?: string[]): LabProfile[] {
  if (!ids || ids.length === 0) return all;
  const unknown = ids.filter((id) => !all.some((p) => p.id === id));
  if (unknown.length) throw new Error(`unknown lab profile(s): ${unknown.join(', ')} (known: ${all.map((p) => p.id).join(', ')})`);
  return all.filter((p) => ids.includes(p.id));
}

/**
 * The line format of lab/ct-init.sh: one action per line, fields separated by a tab:
 *   empty <glob> | tmpfs <dir> | file <path> <base64 content> | replace <glob> <base64 content>
 *   | emptied <glob> | kubelet-config <base64 YAML lines added to the kubelet's configuration>
 */
export function compileProfile(p: LabProfile): string {
  const b64 = (t: string) => Buffer.from(t, 'utf8').toString('base64');
  const lines = [`# profile ${p.id}: ${p.description.replace(/\n/g, ' ')}`];
  for (const a of p.actions) {
    if (a.kind === 'empty') lines.push(`empty\t${a.glob}`);
    else if (a.kind === 'tmpfs') lines.push(`tmpfs\t${a.path}`);
    else if (a.kind === 'replace') lines.push(`replace\t${a.glob}\t${b64(a.content)}`);
    else lines.push(`file\t${a.path}\t${b64(a.content)}`);
  }
  for (const g of p.emptied) lines.push(`emptied\t${g}`);
  const cfg = Object.entries(p.kubeletConfig);
  const yaml = (v: boolean | number | string) => (typeof v === 'string' ? JSON.stringify(v) : String(v));
  const entry = ([k, v]: [string, LabProfile['kubeletConfig'][string]]) =>
    typeof v === 'object' ? `${k}:\n${Object.entries(v).map(([g, on]) => `  ${g}: ${yaml(on)}\n`).join('')}` : `${k}: ${yaml(v)}\n`;
  if (cfg.length) lines.push(`kubelet-config\t${b64(cfg.map(entry).join(''))}`);
  return lines.join('\n') + '\n';
}
