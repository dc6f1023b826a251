// The curated conformance list (lab/conformance.json): the one-node [Conformance] tests of the
// pinned tree that exercise the kubelet, each by its exact upstream name, in two tiers (ci: a
// quick ten for every CI run; full: all of them), and every other upstream [Conformance] test
// with the reason it is left out.
import { readFileSync } from 'node:fs';
import { schemaProblems, z } from '../../lib/schema.js';
import { labFile } from '../paths.js';
import { minorAtLeast } from '../../lib/version.js';

export const CONFORMANCE_TIERS = ['none', 'ci', 'full'] as const;
export type ConformanceTier = (typeof CONFORMANCE_TIERS)[number];

const listSchema = z.object({
  kubernetes: z.string(),
  source: z.string(),
  images: z.array(z.object({ name: z.string(), from: z.string() }).passthrough()),
  // needsKvm: why the test cannot pass on an emulated CPU (for any kubelet); under TCG the lab
  // holds it back and reports it as "needs KVM", never as passed
  // leftConformance: the minor whose conformance.yaml no longer has the test (upstream demoted
  // it), and how; releases of that minor and later do not run it
  included: z
    .array(
      z
        .object({
          name: z.string().min(1),
          tier: z.enum(['ci', 'full']),
          exercises: z.string(),
          needsKvm: z.string().min(1).optional(),
          leftConformance: z.object({ in: z.string().regex(/^\d+\.\d+$/, 'a minor such as "1.37"'), how: z.string().min(1) }).optional(),
        })
        .passthrough(),
    )
    .min(1),
  excluded: z.array(z.object({ name: z.string().min(1), reason: z.string().min(1), detail: z.string().optional() }).passthrough()),
  reasons: z.record(z.string(), z.string()),
});
export type ConformanceList = z.infer<typeof listSchema>;
export type ConformanceTest = ConformanceList['included'][number];

export function loadConformanceList(file = labFile('conformance.json')): ConformanceList {
  const parsed = schemaProblems(listSchema, JSON.parse(readFileSync(file, 'utf8')));
  if (!parsed.value) throw new Error(`invalid ${file}:\n  ${parsed.problems.join('\n  ')}`);
  const l = parsed.value;
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const n of [...l.included.map((t) => t.name), ...l.excluded.map((t) => t.name)]) {
    if (seen.has(n)) problems.push(`listed twice: ${n}`);
    seen.add(n);
  }
  for (const e of l.excluded) if (!l.reasons[e.reason]) problems.push(`unknown reason "${e.reason}" for ${e.name}`);
  // the CI tier must run whole wherever CI runs, TCG included
  for (const t of l.included) if (t.needsKvm && t.tier === 'ci') problems.push(`a test that needs KVM cannot be in the ci tier: ${t.name}`);
  // ...and in every supported release
  for (const t of l.included) if (t.leftConformance && t.tier === 'ci') problems.push(`a test some release no longer has cannot be in the ci tier: ${t.name}`);
  if (problems.length) throw new Error(`invalid ${file}:\n  ${problems.join('\n  ')}`);
  return l;
}

/** The result of a test held back because the run's CPU is emulated (see needsKvm). */
export const NEEDS_KVM = 'needs KVM';

/**
 * The tests of a tier: ci is the quick set, full is every included test; given a release, only
 * those its conformance suite still has.
 */
export function testsOfTier(list: ConformanceList, tier: ConformanceTier, release?: string): ConformanceTest[] {
  if (tier === 'none') return [];
  const tests = tier === 'ci' ? list.included.filter((t) => t.tier === 'ci') : list.included;
  return release ? tests.filter((t) => !leftConformanceBy(t, release)) : tests;
}

/** Whether upstream demoted the test from conformance in `release`'s minor or before. */
export function leftConformanceBy(test: ConformanceTest, release: string): boolean {
  return test.leftConformance !== undefined && minorAtLeast(release, test.leftConformance.in);
}

/**
 * A conformance name without the order of its bracketed tags: upstream reorders them between
 * minors ("[NodeConformance] [Conformance]" in 1.36, "[Conformance] [NodeConformance]" in 1.37).
 */
export function conformanceKey(name: string): string {
  const tags = [...name.matchAll(/\[[^\]]+\]/g)].map((m) => m[0]).sort();
  return `${name.replace(/\s*\[[^\]]+\]/g, '').replace(/\s+/g, ' ').trim()} ${tags.join(' ')}`;
}

/** The codenames of a tree's test/conformance/testdata/conformance.yaml (single-quoted, maybe folded). */
export function conformanceCodenames(yaml: string): string[] {
  const names: string[] = [];
  const lines = yaml.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^\s*codename: '(.*)$/.exec(lines[i]!);
    if (!m) continue;
    let text = m[1]!;
    // a single-quoted scalar ends at a ' that is not doubled; folded lines join with a space
    while (!/(^|[^'])('')*'$/.test(text) && i + 1 < lines.length) text += ` ${lines[++i]!.trim()}`;
    names.push(text.slice(0, -1).replaceAll("''", "'"));
  }
  return names;
}

/**
 * The tier's tests as the tree spells them (the list names them as in the release it was
 * written for); a test the tree does not have is an error naming it.
 */
export function testsInTree(tests: ConformanceTest[], codenames: string[], version: string): ConformanceTest[] {
  const byKey = new Map(codenames.map((n) => [conformanceKey(n), n]));
  const missing: string[] = [];
  const out = tests.map((t) => {
    const name = codenames.includes(t.name) ? t.name : byKey.get(conformanceKey(t.name));
    if (!name) missing.push(t.name);
    return { ...t, name: name ?? t.name };
  });
  if (missing.length) {
    throw new Error(`${missing.length} conformance test(s) of lab/conformance.json are not in ${version}'s test/conformance/testdata/conformance.yaml (renamed or removed upstream): ${missing.join('; ')}`);
  }
  return out;
}

/** The tags test/utils/image/manifest.go gives the lab's images, by config key (Agnhost, BusyBox, Nonewprivs, Pause). */
export function imageTagsOf(manifestGo: string): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const m of manifestGo.matchAll(/configs\[(\w+)\]\s*=\s*Config\{[^,]+,\s*"([^"]+)",\s*"([^"]+)"\}/g)) tags[m[1]!] = m[3]!;
  return tags;
}
