// Queue executor: trivial job round trip and the throughput of 1,000 trivial jobs (worker concurrency 1 and 8)
// through createQueueExecutor, against raw BullMQ (JSON payload, hard-coded processor) on the same private Redis,
// in one run; then the first call after a one-file edit in a 2,000-file project with two queue workers.
// Run: npm run build && node --import tsx bench/queue.bench.ts   (or: npm run bench -- queue). Needs redis-server.
import { makeEditProject } from './project.ts';
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue, QueueEvents } from 'bullmq';
import { createQueueExecutor } from '../src/index.ts';
import { startRedis, type TestRedis } from '../test/fixtures/queue/redis.ts';
import { startWorkerProc, type WorkerProc } from '../test/fixtures/queue/procs.ts';

const KEY = 'bench-key-0123456789abcdef';
const LAT_CALLS = Number(process.env['BENCH_QUEUE_LAT_CALLS'] ?? 300);
const JOBS = Number(process.env['BENCH_QUEUE_JOBS'] ?? 1000);
const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const rawWorker = fileURLToPath(new URL('./queue-raw-worker.mjs', import.meta.url));
const work = realpathSync(mkdtempSync(join(tmpdir(), 'mp-bench-queue-')));
const procs: WorkerProc[] = [];

interface Contender {
  call(x: number): Promise<unknown>;
  close(): Promise<unknown>;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function latency(c: Contender): Promise<number> {
  for (let i = 0; i < 200; i++) await c.call(i);
  const times: number[] = [];
  for (let i = 0; i < LAT_CALLS; i++) {
    const t = performance.now();
    await c.call(i);
    times.push(performance.now() - t);
  }
  return median(times);
}

/** Jobs per second: one warm-up burst, then the median of three bursts of JOBS jobs. */
async function throughput(c: Contender): Promise<number> {
  const rates: number[] = [];
  for (let round = 0; round < 4; round++) {
    const t = performance.now();
    await Promise.all(Array.from({ length: JOBS }, (_, i) => c.call(i)));
    if (round > 0) rates.push(JOBS / ((performance.now() - t) / 1000));
  }
  return median(rates);
}

async function raw(redis: TestRedis, queue: string, concurrency: number): Promise<Contender> {
  procs.push(await startWorkerProc([rawWorker, '127.0.0.1', String(redis.port), queue, String(concurrency)], { cwd: work, env: process.env }));
  const q = new Queue(queue, { connection: redis.connection });
  const events = new QueueEvents(queue, { connection: redis.connection });
  await events.waitUntilReady();
  const waiting = new Map<string, (v: unknown) => void>();
  events.on('completed', ({ jobId, returnvalue }) => {
    waiting.get(jobId)?.(returnvalue);
    waiting.delete(jobId);
  });
  let n = 0;
  return {
    async call(x) {
      const jobId = `r${++n}`;
      const done = new Promise((resolve) => waiting.set(jobId, resolve));
      await q.add('x', { x }, { jobId, removeOnComplete: { age: 3600, count: 10_000 }, removeOnFail: { age: 3600, count: 10_000 } });
      return await done;
    },
    close: () => Promise.all([events.close(), q.close()]),
  };
}

async function ours(redis: TestRedis, queue: string, concurrency: number): Promise<Contender> {
  const cwd = mkdtempSync(join(work, 'w-'));
  procs.push(
    await startWorkerProc([cli, 'worker', '--redis', redis.url, '--queue', queue, '--concurrency', String(concurrency), '--cache', join(cwd, 'cache')], {
      cwd,
      env: { ...process.env, MODULEPICKLE_KEY: KEY },
      ready: /ready on queue/,
    }),
  );
  const ex = createQueueExecutor({ connection: redis.url, queue, key: KEY });
  await ex.ready();
  const inc = (x: number): number => x + 1;
  return { call: (x) => ex.run(inc, x), close: () => ex.close() };
}

async function main(): Promise<void> {
  const redis = await startRedis();
  try {
    const rows: string[] = [];
    let rawLat = 0;
    let oursLat = 0;
    for (const concurrency of [1, 8]) {
      const r = await raw(redis, `raw${concurrency}`, concurrency);
      const o = await ours(redis, `mp${concurrency}`, concurrency);
      if (concurrency === 1) {
        rawLat = await latency(r);
        oursLat = await latency(o);
      }
      const rawTp = await throughput(r);
      const oursTp = await throughput(o);
      rows.push(`| ${JOBS} trivial jobs at once, worker concurrency ${concurrency} (jobs/s, median of 3) | ${rawTp.toFixed(0)} | ${oursTp.toFixed(0)} | ${(oursTp / rawTp).toFixed(2)}x |`);
      await Promise.all([r.close(), o.close()]);
    }
    console.log(`Trivial job (x => x + 1), one worker process (ours: queue worker + its local pool), private Redis ${redis.url}:\n`);
    console.log('| measure | raw BullMQ | createQueueExecutor | ratio |');
    console.log('| --- | ---: | ---: | ---: |');
    console.log(`| round trip, median of ${LAT_CALLS} (ms) | ${rawLat.toFixed(2)} | ${oursLat.toFixed(2)} | ${(oursLat / rawLat).toFixed(2)}x |`);
    for (const row of rows) console.log(row);
    await editLatency(redis);
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await redis.stop();
  }
}

// First call after a one-file edit in a 2,000-file project, two queue workers (each with its own cache).
async function editLatency(redis: TestRedis): Promise<void> {
  const { project, target, files } = makeEditProject(work);
  const mod = (await import(target)) as { f: (x: number) => number };
  for (let i = 0; i < 2; i++) {
    const cwd = mkdtempSync(join(work, 'edit-'));
    procs.push(
      await startWorkerProc([cli, 'worker', '--redis', redis.url, '--queue', 'edit', '--concurrency', '1', '--cache', join(cwd, 'cache')], {
        cwd,
        env: { ...process.env, MODULEPICKLE_KEY: KEY },
        ready: /ready on queue/,
      }),
    );
  }
  const ex = createQueueExecutor({ connection: redis.url, queue: 'edit', key: KEY, dumpsOptions: { root: project } });
  const call = (x: number): Promise<number> => ex.run((y: number) => mod.f(y), x);
  // Both workers get the tree: two calls at once, each worker takes one.
  let t = performance.now();
  await Promise.all([call(1), call(1)]);
  const first = performance.now() - t;
  const firstUploads = ex.stats.uploadedBlobs;
  t = performance.now();
  await call(1);
  const unchanged = performance.now() - t;
  const edits: number[] = [];
  const uploadsBefore = ex.stats.uploadedBlobs;
  for (let i = 1; i <= 5; i++) {
    writeFileSync(target, `export const bump = ${i};\nexport function f(x) { return x + bump; }\n`);
    await new Promise((r) => setTimeout(r, 60)); // past the stat cache's racy window, as between real edits
    t = performance.now();
    const v = await call(1);
    edits.push(performance.now() - t);
    if (v !== 1 + i) throw new Error(`edit ${i} not seen: got ${v}`);
  }
  const perEdit = (ex.stats.uploadedBlobs - uploadsBefore) / edits.length;
  await ex.close();
  console.log(`\nProject of ${files} files (${ex.lastBuild?.manifest.entries.length ?? '?'} shipped), two queue workers, same Redis:\n`);
  console.log('| call | latency (ms) |');
  console.log('| --- | ---: |');
  console.log(`| first calls (both workers cold: ${firstUploads} blobs uploaded, each worker fetches the tree) | ${first.toFixed(1)} |`);
  console.log(`| unchanged call | ${unchanged.toFixed(1)} |`);
  console.log(`| first call after a one-file edit (median of ${edits.length}) | ${median(edits).toFixed(1)} |`);
  console.log(`\n(${perEdit} blobs uploaded per edit: the edited file and the function payload that carries the new manifest.)`);
}

try {
  await main();
} finally {
  rmSync(work, { recursive: true, force: true });
}
