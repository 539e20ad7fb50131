// Runs inside a generated user project (bench/user-project.ts), under tsx or compiled by tsc: the thread pool's
// warm path as users write it, beside a raw worker_threads postMessage echo (the floor), piscina and tinypool, and
// moving large typed arrays with `transfer`. Prints one JSON line.
import { Worker } from 'node:worker_threads';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import { Tinypool } from 'tinypool';
import { createPool, createThreadPool, transfer } from 'modulepickle';
import { v } from './lib/v.js';
import { measureRows, median, type Row } from './measure.js';

const THREADS = 2;
const tmp = mkdtempSync(join(tmpdir(), 'mp-user-threads-'));

// The floor: a raw worker_threads echo (structured clone over the port), round-robin over THREADS threads.
const echoFile = join(tmp, 'echo.mjs');
writeFileSync(echoFile, "import { parentPort } from 'node:worker_threads';\nparentPort.on('message', (m) => parentPort.postMessage(m.a ? { id: m.id, a: m.a } : { id: m.id, v: m.v + 1 }, m.a ? [m.a.buffer] : undefined));\n");
const echoes = Array.from({ length: THREADS }, () => new Worker(echoFile));
const pending = new Map<number, (m: { a?: Float64Array }) => void>();
for (const w of echoes) w.on('message', (m: { id: number; a?: Float64Array }) => (pending.get(m.id)!(m), pending.delete(m.id)));
let id = 0;
const echo = (x: number) => new Promise<unknown>((r) => (pending.set(++id, r), echoes[id % THREADS]!.postMessage({ id, v: x })));
const echoMove = (a: Float64Array) => new Promise<Float64Array>((r) => (pending.set(++id, (m) => r(m.a!)), echoes[id % THREADS]!.postMessage({ id, a }, [a.buffer as ArrayBuffer])));

const threads = createThreadPool({ threads: THREADS, cacheDir: join(tmp, 'cache'), onLog: () => {} });
const pool = createPool({ workers: THREADS, cacheDir: join(tmp, 'pcache'), onLog: () => {} });
await Promise.all([threads.ready(), pool.ready()]);
const inc = (x: number) => x + 1;
const wrapped = threads.wrap(inc);
const k = 1;
const workerFile = join(tmp, 'peer-worker.mjs');
writeFileSync(workerFile, 'export default (x) => x + 1;\n');
const piscina = new Piscina({ filename: workerFile, minThreads: THREADS, maxThreads: THREADS });
const tinypool = new Tinypool({ filename: workerFile, minThreads: THREADS, maxThreads: THREADS });

const rows: Row[] = [
  { name: 'raw worker_threads postMessage echo (floor)', call: echo },
  { name: 'threads: run(() => 1), a new inline closure per call', call: () => threads.run(() => 1) },
  { name: 'threads: run((x) => x + k, i), inline, one capture', call: (i) => threads.run((x: number) => x + k, i) },
  { name: 'threads: run(fn, i), one function object reused', call: (i) => threads.run(inc, i) },
  { name: 'threads: wrap(fn)(i)', call: (i) => wrapped(i) },
  { name: 'threads: run(() => v(i)), inline, uses a local module', call: (i) => threads.run(() => v(i)) },
  { name: 'threads: run(v, i), an export of a local module passed as the function', call: (i) => threads.run(v, i) },
  { name: 'threads: await map(fn, items)', call: (i) => threads.run(inc, i), burst: async (n) => await threads.map(inc, Array.from({ length: n }, (_, i) => i)), latency: false },
  { name: 'process pool: run(() => 1), inline', call: () => pool.run(() => 1) },
  { name: 'piscina run(i) (separate worker file)', call: (i) => piscina.run(i) },
  { name: 'tinypool run(i) (separate worker file)', call: (i) => tinypool.run(i) },
];
const measured = await measureRows(rows);

// Large arguments: one Float64Array sent and returned, moved both ways with `transfer` (the same memory goes back
// and forth, nothing is allocated) vs copied both ways, beside a raw postMessage that moves it both ways.
const sizes = [10, 100];
const moves: { name: string; mb: number; us: number }[] = [];
async function timeMove(name: string, mb: number, roundTrip: (a: Float64Array<ArrayBufferLike>) => Promise<Float64Array<ArrayBufferLike>>): Promise<void> {
  let a: Float64Array<ArrayBufferLike> = new Float64Array((mb * 1048576) / 8).fill(1);
  const t: number[] = [];
  for (let i = 0; i < 12; i++) {
    const s = performance.now();
    a = await roundTrip(a);
    t.push(performance.now() - s);
    if (a.length !== (mb * 1048576) / 8 || a[12345] !== 1) throw new Error(`${name}: the array came back wrong`);
  }
  moves.push({ name, mb, us: median(t.slice(2)) * 1000 });
}
for (const mb of sizes) {
  await timeMove('raw postMessage, moved both ways', mb, echoMove);
  await timeMove('threads: call((x) => transfer(x), [a], { transfer: true })', mb, (a) => threads.call((x: Float64Array) => transfer(x), [a], { transfer: true }));
  await timeMove('threads: run((x) => x, a), copied both ways', mb, (a) => threads.run((x: Float64Array) => x, a));
}

await threads.close();
await pool.close();
await piscina.destroy();
await tinypool.destroy();
for (const w of echoes) await w.terminate();
rmSync(tmp, { recursive: true, force: true });
console.log(JSON.stringify({ rows: measured, moves }));
