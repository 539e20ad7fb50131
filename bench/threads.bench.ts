// The thread pool (createThreadPool), measured the way users write code: from a generated TypeScript project run
// with tsx, and the same compiled by tsc and run with node; a new inline closure per call; a raw worker_threads
// postMessage echo (the floor), piscina and tinypool in the same run (bench/user-scripts/threads-warm.ts); then
// 10 MB and 100 MB Float64Array arguments moved with `transfer` vs copied. Ratios are what to compare across runs.
// Run: npm run build && node --import tsx bench/threads.bench.ts   (or: npm run bench -- threads)
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeUserProject, runUserScript, type RunMode } from './user-project.ts';

interface Out {
  rows: { name: string; latencyUs: number | null; tasksPerSec: number }[];
  moves: { name: string; mb: number; us: number }[];
}

const files = Number(process.env['BENCH_PROJECT_SIZES']?.split(',')[0] ?? 2000);
const work = realpathSync(mkdtempSync(join(tmpdir(), 'mp-bench-threads-')));
try {
  console.log(`Node ${process.version}, ${new Date().toISOString()}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}; 2 threads each.`);
  console.log('Latency: median of sequential calls (5 interleaved rounds); throughput: 10,000 tasks submitted at once.\n');
  const dir = join(work, `p${files}`);
  makeUserProject(dir, files);
  for (const mode of ['tsx', 'js'] as RunMode[]) {
    const out = await runUserScript<Out>(dir, 'threads-warm.ts', mode);
    const floor = out.rows[0]!.latencyUs!;
    const best = (name: string) => out.rows.find((r) => r.name.startsWith(name))!.tasksPerSec;
    const piscina = best('piscina');
    const tinypool = best('tinypool');
    console.log(`#### ${files.toLocaleString('en')}-file project, ${mode === 'tsx' ? 'TypeScript under tsx' : 'compiled by tsc, plain node'}\n`);
    console.log('| call | latency (µs) | vs postMessage floor | throughput (tasks/s) | vs piscina | vs tinypool |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
    for (const r of out.rows) {
      const l = r.latencyUs === null ? '-' : r.latencyUs.toFixed(0);
      const ratio = r.latencyUs === null ? '-' : `${(r.latencyUs / floor).toFixed(2)}x`;
      console.log(`| ${r.name} | ${l} | ${ratio} | ${r.tasksPerSec.toFixed(0)} | ${(r.tasksPerSec / piscina).toFixed(2)}x | ${(r.tasksPerSec / tinypool).toFixed(2)}x |`);
    }
    console.log('\n| large argument | 10 MB (µs) | 100 MB (µs) | 100 MB / 10 MB |');
    console.log('| --- | ---: | ---: | ---: |');
    for (const name of [...new Set(out.moves.map((m) => m.name))]) {
      const a = out.moves.find((m) => m.name === name && m.mb === 10)!.us;
      const b = out.moves.find((m) => m.name === name && m.mb === 100)!.us;
      console.log(`| ${name} | ${a.toFixed(0)} | ${b.toFixed(0)} | ${(b / a).toFixed(2)}x |`);
    }
    console.log('');
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
