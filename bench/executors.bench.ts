// Executors: round-trip latency of a trivial call and throughput of 10,000 trivial tasks, createPool against raw
// child_process.fork IPC (the floor), workerpool's process pool and piscina (worker threads), in one run; then
// the first call after a one-file edit in a 2,000-file project.
// Run: npm run build && node --import tsx bench/executors.bench.ts   (or: npm run bench -- executors)
import { makeEditProject } from './project.ts';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import workerpool from 'workerpool';
import { Piscina } from 'piscina';
import { createPool } from '../src/index.ts';

const WORKERS = 2;
const LAT_CALLS = Number(process.env['BENCH_LAT_CALLS'] ?? 2000);
const TASKS = Number(process.env['BENCH_TASKS'] ?? 10_000);
const work = realpathSync(mkdtempSync(join(tmpdir(), 'mp-bench-exec-')));

interface Contender {
  name: string;
  call(x: number): Promise<unknown>;
  burst?(n: number): Promise<unknown>;
  close(): Promise<unknown>;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function latency(c: Contender, calls: number): Promise<number> {
  for (let i = 0; i < 200; i++) await c.call(i);
  const times: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t = performance.now();
    await c.call(i);
    times.push(performance.now() - t);
  }
  return median(times) * 1000;
}

async function throughput(c: Contender): Promise<number> {
  const t = performance.now();
  if (c.burst) await c.burst(TASKS);
  else {
    const ps: Promise<unknown>[] = [];
    for (let i = 0; i < TASKS; i++) ps.push(c.call(i));
    await Promise.all(ps);
  }
  return TASKS / ((performance.now() - t) / 1000);
}

function forkFloor(): Contender {
  const child = join(work, 'fork-child.cjs');
  writeFileSync(child, "process.on('message', (m) => process.send({ id: m.id, v: m.v + 1 }));");
  const kids: ChildProcess[] = Array.from({ length: WORKERS }, () => fork(child));
  const pending = new Map<number, (v: unknown) => void>();
  let id = 0;
  let rr = 0;
  for (const k of kids) k.on('message', (m: { id: number; v: number }) => (pending.get(m.id)!(m.v), pending.delete(m.id)));
  return {
    name: 'raw child_process.fork IPC (floor)',
    call: (v) =>
      new Promise((resolve) => {
        const i = ++id;
        pending.set(i, resolve);
        kids[rr++ % kids.length]!.send({ id: i, v });
      }),
    close: async () => kids.forEach((k) => k.kill()),
  };
}

async function main(): Promise<void> {
  const pool = createPool({ workers: WORKERS });
  await pool.ready();
  const inc = (x: number) => x + 1;
  const step = 1;
  const closure = (x: number) => x + step; // captures a variable: pickled afresh on every run()
  const wrapped = pool.wrap(inc);
  const wp = workerpool.pool({ workerType: 'process', maxWorkers: WORKERS, minWorkers: WORKERS });
  const piscinaWorker = join(work, 'piscina-worker.mjs');
  writeFileSync(piscinaWorker, 'export default (x) => x + 1;\n');
  const piscina = new Piscina({ filename: piscinaWorker, minThreads: WORKERS, maxThreads: WORKERS });

  const contenders: Contender[] = [
    forkFloor(),
    { name: 'createPool run(fn, x)', call: (x) => pool.run(inc, x), close: async () => {} },
    { name: 'createPool run(closure, x) (re-pickled per call)', call: (x) => pool.run(closure, x), close: async () => {} },
    { name: 'createPool wrap(fn)(x) (fn pickled once)', call: (x) => wrapped(x), close: async () => {} },
    {
      name: 'createPool map(fn, items)',
      call: (x) => pool.run(inc, x),
      burst: (n) => pool.map(inc, Array.from({ length: n }, (_, i) => i)).toArray(),
      close: async () => {},
    },
    {
      name: 'workerpool process pool exec(fn, [x])',
      call: async (x) => await wp.exec(inc, [x]),
      close: async () => {
        await wp.terminate();
      },
    },
    { name: 'piscina run(x) (worker threads)', call: (x) => piscina.run(x), close: () => piscina.destroy() },
  ];

  // The VM is shared and noisy: measure in interleaved rounds and keep each contender's median across rounds.
  const ROUNDS = 5;
  const lats = contenders.map(() => [] as number[]);
  const tputs = contenders.map(() => [] as number[]);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, c] of contenders.entries()) {
      if (!c.burst) lats[i]!.push(await latency(c, Math.ceil(LAT_CALLS / ROUNDS)));
      if (round < 3) tputs[i]!.push(await throughput(c));
    }
  }
  const rows = contenders.map((c, i) => ({ name: c.name, lat: c.burst ? undefined : median(lats[i]!), tput: median(tputs[i]!) }));
  for (const c of contenders) await c.close();
  await pool.close();

  const floor = rows[0]!;
  const wpRow = rows.find((r) => r.name.startsWith('workerpool'))!;
  console.log(`Trivial task \`x => x + 1\`, ${WORKERS} workers each; latency = median of ${LAT_CALLS} sequential calls (5 interleaved rounds), throughput = ${TASKS} tasks submitted at once (median of 3 interleaved rounds).\n`);
  console.log('| executor | latency (µs) | vs fork floor | throughput (tasks/s) | vs workerpool |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    const lat = r.lat === undefined ? '-' : r.lat.toFixed(0);
    const ratio = r.lat === undefined ? '-' : `${(r.lat / floor.lat!).toFixed(2)}x`;
    console.log(`| ${r.name} | ${lat} | ${ratio} | ${r.tput.toFixed(0)} | ${(r.tput / wpRow.tput).toFixed(2)}x |`);
  }
  await editLatency();
}

// First call after a one-file edit in a project of 2,000 files: ship rebuild (stat cache), one blob, new tree.
async function editLatency(): Promise<void> {
  const { project, target, files } = makeEditProject(work);
  const mod = (await import(target)) as { f: (x: number) => number };
  const pool = createPool({ workers: 1, cacheDir: join(work, 'cache'), dumpsOptions: { root: project }, onLog: () => {} });
  const call = (x: number) => pool.run((y: number) => mod.f(y), x);
  let t = performance.now();
  await call(1);
  const first = performance.now() - t;
  t = performance.now();
  await call(1);
  const unchanged = performance.now() - t;
  const edits: number[] = [];
  for (let i = 1; i <= 5; i++) {
    writeFileSync(target, `export const bump = ${i};\nexport function f(x) { return x + bump; }\n`);
    await new Promise((r) => setTimeout(r, 60)); // past the stat cache's racy window, as between real edits
    t = performance.now();
    await call(1);
    edits.push(performance.now() - t);
  }
  const blobs = pool.stats.blobsServed;
  await pool.close();
  console.log(`\nProject of ${files} files (${pool.lastBuild?.manifest.entries.length ?? '?'} shipped), one local worker:\n`);
  console.log('| call | latency (ms) |');
  console.log('| --- | ---: |');
  console.log(`| first call (cold worker cache: ${files} blobs) | ${first.toFixed(1)} |`);
  console.log(`| unchanged call | ${unchanged.toFixed(1)} |`);
  console.log(`| first call after a one-file edit (median of ${edits.length}) | ${median(edits).toFixed(1)} |`);
  console.log(`\n(${blobs} blobs served in total: the first call's tree plus one per edit.)`);
}

try {
  await main();
} finally {
  rmSync(work, { recursive: true, force: true });
}
