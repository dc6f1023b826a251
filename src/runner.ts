// The one small runner: first verifies every selected stage's options (verify, like
// semantic-release's verifyConditions: bad input fails before any work), then threads the
// outputs of each stage into the next, records each stage's output with the hash of its inputs
// (the files that feed it included), and skips a stage whose inputs did not change.
import path from 'node:path';
import { hashFiles, hashJson, readJson, writeFileAtomic } from './lib/fsutil.js';
import { PROJECT_ROOT } from './manifest.js';
import { EngineError } from './lib/engine.js';
import { STAGE_NAMES, StageError, type Stage, type StageContext, type StageName, type StageOutputs } from './stages/types.js';
import { sourceStage } from './stages/source.js';
import { patchStage } from './stages/patch.js';
import { buildStage } from './stages/build.js';
import { packageStage } from './stages/package.js';
import { smokeStage } from './stages/smoke.js';

export const STAGES: { [N in StageName]: Stage<N> } = {
  source: sourceStage,
  patch: patchStage,
  build: buildStage,
  package: packageStage,
  smoke: smokeStage,
};

interface StageRecord {
  stage: StageName;
  inputsHash: string;
  finishedAt: string;
  output: unknown;
}

export interface StageReport {
  stage: StageName;
  status: 'ran' | 'skipped' | 'planned' | 'loaded';
  inputsHash: string;
  seconds: number;
}

export interface RunResult {
  outputs: StageOutputs;
  stages: StageReport[];
}

function recordPath(ctx: StageContext, name: StageName): string {
  return path.join(ctx.paths.state, `${name}.json`);
}

export function selectStages(from: StageName = 'source', to: StageName = 'smoke'): StageName[] {
  const a = STAGE_NAMES.indexOf(from);
  const b = STAGE_NAMES.indexOf(to);
  if (a > b) throw new StageError(`--from ${from} comes after --to ${to}`, 'cli');
  return STAGE_NAMES.slice(a, b + 1);
}

/** Every selected stage's up-front checks, in stage order, before any stage runs. */
/** An engine or toolchain error (lib/engine.ts knows no stages) reported as the stage it stopped. */
function inStage(name: StageName): (err: unknown) => never {
  return (err: unknown) => {
    if (err instanceof EngineError) throw new StageError(err.message, name, err.hint ? { hint: err.hint } : undefined);
    throw err;
  };
}

export async function verifyStages(ctx: StageContext, names: StageName[]): Promise<void> {
  for (const name of names) {
    try {
      await (STAGES[name] as Stage<StageName>).verify?.(ctx);
    } catch (err) {
      inStage(name)(err);
    }
  }
}

export async function runPipeline(ctx: StageContext, from: StageName, to: StageName): Promise<RunResult> {
  const selected = new Set(selectStages(from, to));
  await verifyStages(ctx, [...selected]);
  const outputs: StageOutputs = {};
  const reports: StageReport[] = [];
  for (const name of STAGE_NAMES) {
    if (STAGE_NAMES.indexOf(name) > STAGE_NAMES.indexOf(to)) break;
    // Ctrl-C between stages: stop before starting the next (a stage's own commands get the signal too).
    if (ctx.signal.aborted) throw new StageError(`interrupted before the ${name} stage; finished stages keep their records`, name);
    const stage = STAGES[name] as Stage<StageName>;
    const started = Date.now();
    const inputsHash = hashJson({ stage: name, files: await hashFiles(stage.sources(ctx), PROJECT_ROOT), inputs: await stage.inputs(ctx, outputs) });
    const record = await readJson<StageRecord>(recordPath(ctx, name));
    const recorded = record && record.inputsHash === inputsHash ? record.output : undefined;

    if (!selected.has(name)) {
      // Earlier stages are not run: their recorded outputs must exist and match.
      if (!recorded || !(await stage.intact(ctx, recorded as never))) {
        throw new StageError(
          `--from ${from}: the ${name} stage has no up-to-date recorded output for these inputs; run it first (drop --from, or use --from ${name})`,
          'cli',
        );
      }
      (outputs as Record<string, unknown>)[name] = recorded;
      reports.push({ stage: name, status: 'loaded', inputsHash, seconds: 0 });
      continue;
    }
    if (ctx.opts.dryRun) {
      ctx.log.info(`would run ${name}: ${stage.description}${recorded ? ' (recorded output is current: would skip)' : ''}`);
      reports.push({ stage: name, status: 'planned', inputsHash, seconds: 0 });
      if (recorded) (outputs as Record<string, unknown>)[name] = recorded;
      else break; // later stages' inputs depend on this one's output
      continue;
    }
    if (!ctx.opts.force && recorded && (await stage.intact(ctx, recorded as never))) {
      ctx.log.step(name).skip(`${name}: inputs unchanged since ${record!.finishedAt}, skipped`);
      (outputs as Record<string, unknown>)[name] = recorded;
      reports.push({ stage: name, status: 'skipped', inputsHash, seconds: 0 });
      continue;
    }
    const step = ctx.log.step(`${name}: ${stage.description}`);
    let output: unknown;
    try {
      output = await stage.run(ctx, outputs);
    } catch (err) {
      step.fail(`${name} failed`);
      inStage(name)(err);
    }
    if (ctx.signal.aborted) {
      // the stage may have finished its work half-interrupted: do not record it as done
      step.fail(`${name} interrupted`);
      throw new StageError(`interrupted during the ${name} stage; it reruns next time`, name);
    }
    step.succeed(`${name} done`);
    const rec: StageRecord = { stage: name, inputsHash, finishedAt: new Date().toISOString(), output };
    await writeFileAtomic(recordPath(ctx, name), `${JSON.stringify(rec, null, 2)}\n`);
    (outputs as Record<string, unknown>)[name] = output;
    reports.push({ stage: name, status: 'ran', inputsHash, seconds: (Date.now() - started) / 1000 });
  }
  return { outputs, stages: reports };
}
