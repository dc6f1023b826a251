// The one seam to the XML parser (fast-xml-parser): JUnit reports, as ginkgo writes them for
// the conformance suite (a testcase per spec: name "[It] <spec text>", status, time, and a
// failure element with the message when it failed).
import { XMLBuilder, XMLParser } from 'fast-xml-parser';

export type JunitStatus = 'passed' | 'failed' | 'skipped' | 'pending' | 'panicked' | 'interrupted' | 'timedout' | 'aborted' | 'unknown';

export interface JunitCase {
  /** the spec text without ginkgo's "[It] " node prefix */
  name: string;
  status: JunitStatus;
  seconds: number;
  /** the failure message (first lines), when it did not pass; for a pass after a retry, the first attempt's */
  message?: string;
  /** how many times ginkgo ran it, when more than once (--flake-attempts) */
  attempts?: number;
}

/** How a pass on a later attempt reads in the progress log, the lab's table and the JUnit. */
export function passedOnAttempt(attempts: number | string): string {
  return `passed on attempt ${attempts}`;
}

const asArray = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

export function parseJunit(xml: string): JunitCase[] {
  // htmlEntities: Go's encoder writes a quote in a spec name as &#34;
  const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', htmlEntities: true }).parse(xml) as Record<string, unknown>;
  const suites = doc.testsuites ? asArray((doc.testsuites as { testsuite?: unknown }).testsuite) : asArray(doc.testsuite);
  if (!doc.testsuites && !doc.testsuite) throw new Error('not a JUnit report: no testsuites or testsuite element');
  const out: JunitCase[] = [];
  for (const s of suites as { testcase?: unknown }[]) {
    for (const c of asArray(s.testcase) as Record<string, unknown>[]) {
      const name = String(c.name ?? '').replace(/^\[It\]\s+/, '');
      const failure = (c.failure ?? c.error) as Record<string, unknown> | string | undefined;
      let status = String(c.status ?? '') as JunitStatus;
      if (!status) status = failure ? 'failed' : c.skipped !== undefined ? 'skipped' : 'passed';
      const messageOf = (f: typeof failure): string | undefined => {
        if (f === undefined) return undefined;
        if (typeof f === 'string') return f;
        // the e2e suite leaves the message attribute empty (OmitFailureMessageAttr): the text has it
        return String(f.message || f['#text'] || '').replace(/^\[FAILED\]\s*/, '');
      };
      // a retried spec's timeline (system-err) says "Attempt #N Failed.  Retrying" per failed attempt
      const timeline = typeof c['system-err'] === 'string' ? c['system-err'] : '';
      const retries = [...timeline.matchAll(/^Attempt #(\d+) Failed\./gm)].map((m) => Number(m[1]));
      const attempts = retries.length ? Math.max(...retries) + 1 : 1;
      const firstFailure = /\[FAILED\] Failure recorded during attempt 1:\n([\s\S]*?)(?:\nIn \[|\n< Exit|$)/.exec(timeline)?.[1];
      const message = messageOf(failure) ?? (attempts > 1 ? firstFailure : undefined);
      out.push({
        name,
        status,
        seconds: Number(c.time ?? 0),
        ...(message ? { message: message.split('\n').slice(0, 6).join('\n').slice(0, 600) } : {}),
        ...(attempts > 1 ? { attempts } : {}),
      });
    }
  }
  return out;
}

/** A JUnit report of exactly these suites and cases, as CI systems and release pages read it. */
export function writeJunit(suites: { name: string; cases: JunitCase[] }[]): string {
  const count = (cases: JunitCase[]) => ({
    failures: cases.filter((c) => c.status !== 'passed' && c.status !== 'skipped').length,
    skipped: cases.filter((c) => c.status === 'skipped').length,
    time: cases.reduce((t, c) => t + c.seconds, 0).toFixed(3),
  });
  const all = count(suites.flatMap((s) => s.cases));
  const doc = {
    '?xml': { '@_version': '1.0', '@_encoding': 'UTF-8' },
    testsuites: {
      '@_tests': suites.reduce((n, s) => n + s.cases.length, 0),
      '@_failures': all.failures,
      '@_time': all.time,
      testsuite: suites.map((suite) => {
        const c = count(suite.cases);
        return {
          '@_name': suite.name,
          '@_tests': suite.cases.length,
          '@_failures': c.failures,
          '@_skipped': c.skipped,
          '@_time': c.time,
          testcase: suite.cases.map((k) => ({
            '@_name': k.name,
            '@_classname': suite.name,
            '@_status': k.status,
            '@_time': k.seconds.toFixed(3),
            ...(k.status === 'skipped' ? { skipped: '' } : k.status !== 'passed' ? { failure: { '@_message': k.message ?? k.status, '#text': k.message ?? k.status } } : {}),
            // a pass on a later attempt says so, with what the first attempt met
            ...(k.status === 'passed' && k.attempts ? { 'system-out': `${passedOnAttempt(k.attempts)}${k.message ? `; attempt 1 failed: ${k.message}` : ''}` } : {}),
          })),
        };
      }),
    },
  };
  return new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@_', format: true, suppressEmptyNode: true }).build(doc) as string;
}
