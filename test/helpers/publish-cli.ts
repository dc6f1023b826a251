// Stand-in entry for `kubelet-lxc publish` until src/cli.ts has the command: the same flags,
// the same wiring (resolve the manifest, dist = <workdir>/out/<id>/dist, runPublish, print the
// report: JSON with --json, the readable plan otherwise). Errors: "error: <message>", exit 1.
import path from 'node:path';
import { Command } from 'commander';
import { PROJECT_ROOT, resolveManifest } from '../../src/manifest.js';
import { createLogger } from '../../src/lib/progress.js';
import { formatReport, runPublish } from '../../src/publish/index.js';

const program = new Command('kubelet-lxc');
program
  .command('publish')
  .description('publish the release assets of a manifest to a GitHub release')
  .option('--release <id|path>', 'release manifest: id or version under releases/, or a file')
  .option('--workdir <dir>', 'work directory (as the CLI: <project>/work)', path.join(PROJECT_ROOT, 'work'))
  .requiredOption('--repo <owner/name>', 'GitHub repository')
  .option('--replace', 'replace assets that differ and delete strays', false)
  .option('--dry-run', 'print the plan, change nothing', false)
  .option('--json', 'print the report as JSON', false)
  .action(async (o: { release?: string; workdir: string; repo: string; replace: boolean; dryRun: boolean; json: boolean }) => {
    const manifest = resolveManifest(o.release);
    const distDir = path.join(path.resolve(o.workdir), 'out', manifest.id, 'dist');
    const controller = new AbortController();
    process.once('SIGINT', () => controller.abort());
    const report = await runPublish({
      manifest,
      distDir,
      repo: o.repo,
      replace: o.replace,
      dryRun: o.dryRun,
      log: createLogger({ json: o.json }),
      env: process.env,
      signal: controller.signal,
    });
    process.stdout.write(`${o.json ? JSON.stringify(report, null, 2) : formatReport(report)}\n`);
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
