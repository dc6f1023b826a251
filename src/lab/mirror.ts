// The Debian mirror the guest is built from: whatever the host's own apt sources use
// for its main archive (never a hostname written into the project).
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface AptSource {
  uri: string;
  suites: string[];
  components: string[];
}

/** Sources of one-line format files (sources.list, *.list). */
export function parseOneLineSources(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line.startsWith('deb ')) continue;
    const words = line.slice(4).trim();
    // drop an options block: deb [signed-by=... arch=...] uri suite comp...
    const rest = words.startsWith('[') ? words.slice(words.indexOf(']') + 1).trim() : words;
    const [uri, suite, ...components] = rest.split(/\s+/);
    if (uri && suite) out.push({ uri, suites: [suite], components });
  }
  return out;
}

/** Sources of deb822 files (*.sources). */
export function parseDeb822Sources(text: string): AptSource[] {
  const out: AptSource[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const raw of stanza.split('\n')) {
      if (raw.startsWith('#')) continue;
      const m = /^([A-Za-z-]+):\s*(.*)$/.exec(raw);
      if (m?.[1] && m[2] !== undefined) fields.set(m[1].toLowerCase(), m[2].trim());
    }
    if ((fields.get('enabled') ?? 'yes').toLowerCase() === 'no') continue;
    if (!(fields.get('types') ?? '').split(/\s+/).includes('deb')) continue;
    const uris = (fields.get('uris') ?? '').split(/\s+/).filter(Boolean);
    const suites = (fields.get('suites') ?? '').split(/\s+/).filter(Boolean);
    const components = (fields.get('components') ?? '').split(/\s+/).filter(Boolean);
    for (const uri of uris) out.push({ uri, suites, components });
  }
  return out;
}

/**
 * The main Debian archive among the sources: an entry with component main whose
 * suites are plain release names (not -security, -updates, -backports).
 */
export function pickDebianMirror(sources: AptSource[]): string | undefined {
  const plain = (s: string): boolean => /^(bookworm|trixie|forky|sid|stable|testing|unstable|bullseye)$/.test(s);
  const hit = sources.find(
    (s) => s.components.includes('main') && s.suites.some(plain) && !/security/.test(s.uri) && /^https?:\/\//.test(s.uri),
  );
  return hit?.uri.replace(/\/+$/, '');
}

/** Reads /etc/apt/sources.list and /etc/apt/sources.list.d/ of this machine. */
export async function hostDebianMirror(aptDir = '/etc/apt'): Promise<string> {
  const sources: AptSource[] = [];
  try {
    sources.push(...parseOneLineSources(await readFile(join(aptDir, 'sources.list'), 'utf8')));
  } catch {
    // no sources.list: deb822 only
  }
  let names: string[] = [];
  try {
    names = (await readdir(join(aptDir, 'sources.list.d'))).sort();
  } catch {
    names = [];
  }
  for (const name of names) {
    const text = await readFile(join(aptDir, 'sources.list.d', name), 'utf8').catch(() => '');
    if (name.endsWith('.list')) sources.push(...parseOneLineSources(text));
    else if (name.endsWith('.sources')) sources.push(...parseDeb822Sources(text));
  }
  const mirror = pickDebianMirror(sources);
  if (!mirror) {
    throw new Error(`no Debian main archive found in ${aptDir}/sources.list*: the lab builds its guest from the host's Debian mirror`);
  }
  return mirror;
}
