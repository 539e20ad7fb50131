// The process pool's warm path, measured the way users write code: from a generated TypeScript project (2,000 and
// 20,000 files) run with tsx, and the same compiled by tsc and run with node; a new inline closure per call; raw
// child_process.fork IPC (the floor), workerpool's process pool and piscina in the same run (bench/user-scripts/
// pool-warm.ts); then edit-and-call-at-once rounds. Ratios are what to compare across runs.
// Run: npm run build && node --import tsx bench/executors.bench.ts   (or: npm run bench -- executors)
// Before/after in one run: BENCH_BASELINE=<a built checkout of an older commit> adds its latency column (same rows,
// same generated project, run right after this checkout's; each with its own fork floor).
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { baselineCheckout, makeUserProject, runUserScript, type RunMode } from './user-project.ts';

interface Out {
  rows: { name: string; latencyUs: number | null; tasksPerSec: number }[];
  edit: { medianUs: number; maxUs: number; stale: number; rounds: number; blobsPerEdit: number };
  shipped: number;
}

const sizes = (process.env['BENCH_PROJECT_SIZES'] ?? '2000,20000').split(',').map(Number);
const work = realpathSync(mkdtempSync(join(tmpdir(), 'mp-bench-exec-')));
try {
  console.log(`Node ${process.version}, ${new Date().toISOString()}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}; 2 workers each.`);
  console.log('Latency: median of sequential calls (5 interleaved rounds); throughput: 10,000 tasks submitted at once.\n');
  const baseline = baselineCheckout();
  if (baseline) console.log(`Baseline (before) column: ${baseline}\n`);
  for (const files of sizes) {
    const dir = join(work, `p${files}`);
    makeUserProject(dir, files);
    const baseDir = join(work, `b${files}`);
    if (baseline) makeUserProject(baseDir, files, baseline);
    for (const mode of ['tsx', 'js'] as RunMode[]) {
      const out = await runUserScript<Out>(dir, 'pool-warm.ts', mode);
      const before = baseline ? await runUserScript<Out>(baseDir, 'pool-warm.ts', mode) : undefined;
      const floor = out.rows[0]!.latencyUs!;
      const trivial = out.rows[1]!.latencyUs!;
      const wp = out.rows.find((r) => r.name.startsWith('workerpool'))!.tasksPerSec;
      console.log(`#### ${files.toLocaleString('en')}-file project (${out.shipped} shipped), ${mode === 'tsx' ? 'TypeScript under tsx' : 'compiled by tsc, plain node'}\n`);
      console.log(`| call | latency (µs) | vs fork floor | throughput (tasks/s) | vs workerpool |${before ? ' before: latency (µs) | before: vs its fork floor |' : ''}`);
      console.log(`| --- | ---: | ---: | ---: | ---: |${before ? ' ---: | ---: |' : ''}`);
      for (const r of out.rows) {
        const l = r.latencyUs === null ? '-' : r.latencyUs.toFixed(0);
        const ratio = r.latencyUs === null ? '-' : `${(r.latencyUs / floor).toFixed(2)}x`;
        // by name: a newer checkout may measure rows the baseline does not have
        const b = before?.rows.find((x) => x.name === r.name);
        const bl = b?.latencyUs == null ? '-' : b.latencyUs.toFixed(0);
        const br = b?.latencyUs == null ? '-' : `${(b.latencyUs / before!.rows[0]!.latencyUs!).toFixed(2)}x`;
        console.log(`| ${r.name} | ${l} | ${ratio} | ${r.tasksPerSec.toFixed(0)} | ${(r.tasksPerSec / wp).toFixed(2)}x |${before ? ` ${bl} | ${br} |` : ''}`);
      }
      const local = out.rows.find((r) => r.name.includes('local module'))!.latencyUs!;
      console.log(`\n- local-module call unchanged: ${(local / trivial).toFixed(2)}x the trivial inline call (goal <= 2x)`);
      console.log(`- first call after a one-file edit, no sleep: median ${(out.edit.medianUs / 1000).toFixed(1)} ms, max ${(out.edit.maxUs / 1000).toFixed(1)} ms over ${out.edit.rounds} rounds; ${out.edit.blobsPerEdit} blob(s) per edit; stale results: ${out.edit.stale}\n`);
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
