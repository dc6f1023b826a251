// The series' proof without a kubelet build: the release's tree (source stage), its series
// applied (patch stage), then the stock-vs-patched site matrix in the builder container for the
// release's Go, and the series' doctor compiled against the patched tree with its tests run. What CI runs for every release that is not the default, and what `rebase` runs
// on the series it wrote.
import { runPipeline } from '../../runner.js';
import { ensureBuilderImage, hostGoroot, resolveEngine } from '../../lib/engine.js';
import { StageError, type StageContext } from '../types.js';
import { formatMatrix, runPatchTests, type MatrixReport } from './patchtests.js';
import { testDoctor } from '../build.js';

export interface SeriesMatrixResult {
  release: string;
  kubernetes: string;
  source: { kind: string; origin: string; treeCommit: string };
  patch: { commit: string; applied: string[] };
  matrix: MatrixReport;
  /** the doctor's tests, compiled against the patched tree */
  doctor: { ok: boolean; tests: number; error?: string };
  reports: string[];
}

export async function runSeriesMatrix(ctx: StageContext): Promise<SeriesMatrixResult> {
  const { outputs } = await runPipeline(ctx, 'source', 'patch');
  const source = outputs.source;
  const patch = outputs.patch;
  if (!source || !patch) throw new StageError('the source and patch stages gave no tree to test', 'smoke');
  const engine = await resolveEngine(ctx.opts.engine, ctx.log);
  const goVersion = ctx.manifest.data.go.version;
  let image = 'host';
  if (engine !== 'host') image = (await ensureBuilderImage(engine, goVersion, ctx.opts.builderBase, ctx.log)).ref;
  else await hostGoroot(goVersion, ctx.log);
  const { report, files } = await runPatchTests(ctx, {
    engine,
    image,
    stockTree: source.tree,
    stockCommit: source.treeCommit,
    sourceDateEpoch: source.sourceDateEpoch,
    patchedTree: patch.tree,
    patchedCommit: patch.commit,
  });
  // the series' doctor compiles against this tree and its tests pass (the build stage does the same before building it)
  let doctor: SeriesMatrixResult['doctor'];
  try {
    doctor = { ok: true, tests: await testDoctor(ctx, { engine, image, goVersion, tree: patch.tree, scratch: ctx.paths.reports }) };
  } catch (e) {
    doctor = { ok: false, tests: 0, error: (e as Error).message };
    report.ok = false;
    report.problems.push(`kubelet-lxc-doctor: ${(e as Error).message}`);
  }
  ctx.log.info(formatMatrix(report));
  return {
    doctor,
    release: ctx.manifest.id,
    kubernetes: ctx.manifest.data.kubernetes.version,
    source: { kind: source.kind, origin: source.origin, treeCommit: source.treeCommit },
    patch: { commit: patch.commit, applied: patch.applied.map((a) => a.file) },
    matrix: report,
    reports: files,
  };
}
