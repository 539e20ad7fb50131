// Runs inside a generated user project (bench/user-project.ts), under tsx or compiled by tsc: the process pool's
// warm path as users write it, beside raw fork IPC, workerpool and piscina. Prints one JSON line.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import workerpool from 'workerpool';
import { Piscina } from 'piscina';
import { createPool } from 'modulepickle';
import { v } from './lib/v.js';
import { measureRows, median, type Row } from './measure.js';

const MODE = process.env['BENCH_MODE'] ?? 'tsx';
const WORKERS = 2;
const EDITS = Number(process.env['BENCH_EDITS'] ?? 20);
const tmp = mkdtempSync(join(tmpdir(), 'mp-user-bench-'));

// The floor: a raw child_process.fork echo (JSON over the IPC channel), round-robin over WORKERS children.
const childFile = join(tmp, 'echo.cjs');
writeFileSync(childFile, "process.on('message', (m) => process.send({ id: m.id, v: m.v + 1 }));");
const kids: ChildProcess[] = Array.from({ length: WORKERS }, () => fork(childFile));
const pending = new Map<number, () => void>();
for (const k of kids) k.on('message', (m: { id: number }) => (pending.get(m.id)!(), pending.delete(m.id)));
let id = 0;
const echo = (x: number) => new Promise<void>((r) => (pending.set(++id, r), kids[id % WORKERS]!.send({ id, v: x })));

const pool = createPool({ workers: WORKERS, cacheDir: join(tmp, 'cache'), onLog: () => {} });
await pool.ready();
const inc = (x: number) => x + 1;
const wrapped = pool.wrap(inc);
const k = 1;
const wp = workerpool.pool({ workerType: 'process', maxWorkers: WORKERS, minWorkers: WORKERS });
const piscinaFile = join(tmp, 'piscina-worker.mjs');
writeFileSync(piscinaFile, 'export default (x) => x + 1;\n');
const piscina = new Piscina({ filename: piscinaFile, minThreads: WORKERS, maxThreads: WORKERS });

const rows: Row[] = [
  { name: 'raw child_process.fork IPC echo (floor)', call: echo },
  { name: 'run(() => 1), a new inline closure per call', call: () => pool.run(() => 1) },
  { name: 'run((x) => x + k, i), inline, one capture', call: (i) => pool.run((x: number) => x + k, i) },
  { name: 'run(fn, i), one function object reused', call: (i) => pool.run(inc, i) },
  { name: 'wrap(fn)(i)', call: (i) => wrapped(i) },
  { name: 'run(() => v(i)), inline, uses a local module', call: (i) => pool.run(() => v(i)) },
  { name: 'run(v, i), an export of a local module passed as the function', call: (i) => pool.run(v, i) },
  { name: 'await map(fn, items)', call: (i) => pool.run(inc, i), burst: async (n) => await pool.map(inc, Array.from({ length: n }, (_, i) => i)), latency: false },
  { name: 'workerpool process pool exec(fn, [i])', call: async (i) => await wp.exec(inc, [i]) },
  { name: 'piscina run(i) (worker threads, separate worker file)', call: (i) => piscina.run(i) },
];
const measured = await measureRows(rows);

// Edit the local module, then call at once (no sleep): every call must see its edit, and one blob travels.
const writeVersion = (n: number): void =>
  MODE === 'tsx'
    ? writeFileSync('src/lib/v.ts', `export const bump: number = ${n};\nexport function v(x: number): number {\n  return x + bump;\n}\n`)
    : writeFileSync('dist/lib/v.js', `export const bump = ${n};\nexport function v(x) {\n    return x + bump;\n}\n`);
const edits: number[] = [];
let stale = 0;
const blobsBefore = pool.stats.blobsServed;
for (let n = 1; n <= EDITS; n++) {
  writeVersion(n);
  const s = performance.now();
  const got = await pool.run(() => v(0));
  edits.push((performance.now() - s) * 1000);
  if (got !== n) stale++;
}
const blobsPerEdit = (pool.stats.blobsServed - blobsBefore) / EDITS;
writeVersion(0);
const shipped = pool.lastBuild?.manifest.entries.length;
await pool.close();
await wp.terminate();
await piscina.destroy();
for (const kid of kids) kid.kill();
rmSync(tmp, { recursive: true, force: true });
console.log(
  JSON.stringify({
    rows: measured,
    edit: { medianUs: median(edits), maxUs: Math.max(...edits), stale, rounds: EDITS, blobsPerEdit },
    shipped,
  }),
);
