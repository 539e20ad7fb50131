// Runs inside a generated user project (bench/user-project.ts), under tsx or compiled by tsc: the queue executor's
// warm path as users write it (a new inline closure per call), beside raw BullMQ on the same Redis, against the
// workers bench/queue.bench.ts started (raw BullMQ workers, `modulepickle worker --redis`, and the same with
// --inline). Latency rows run interleaved in rounds; throughput is 1,000 calls at once. Prints one JSON line.
import { Queue, QueueEvents } from 'bullmq';
import { createQueueExecutor } from 'modulepickle';
import { v } from './lib/v.js';
import { median } from './measure.js';

const REDIS_PORT = Number(process.env['BENCH_REDIS_PORT']);
const REDIS_URL = `redis://127.0.0.1:${REDIS_PORT}`;
const KEY = process.env['BENCH_KEY'] ?? '';
const CALLS = Number(process.env['BENCH_QUEUE_LAT_CALLS'] ?? 300);
const JOBS = Number(process.env['BENCH_QUEUE_JOBS'] ?? 1000);
const ROUNDS = 15;
const connection = { host: '127.0.0.1', port: REDIS_PORT };

/** Raw BullMQ: `Queue.add` of a JSON payload, one `QueueEvents` listener, the same job retention as ours. */
async function rawClient(queue: string): Promise<{ call: (x: number) => Promise<unknown>; close: () => Promise<unknown> }> {
  const q = new Queue(queue, { connection });
  const events = new QueueEvents(queue, { connection });
  await events.waitUntilReady();
  const waiting = new Map<string, (v: unknown) => void>();
  events.on('completed', ({ jobId, returnvalue }) => {
    waiting.get(jobId)?.(returnvalue);
    waiting.delete(jobId);
  });
  let n = 0;
  const prefix = `raw-${process.pid}-`;
  return {
    async call(x) {
      const jobId = `${prefix}${++n}`;
      const done = new Promise((resolve) => waiting.set(jobId, resolve));
      await q.add('x', { x }, { jobId, removeOnComplete: { age: 3600, count: 10_000 }, removeOnFail: { age: 24 * 3600, count: 10_000 } });
      return await done;
    },
    close: () => Promise.all([events.close(), q.close()]),
  };
}

const raw1 = await rawClient('raw1');
const raw8 = await rawClient('raw8');
const make = (queue: string) => createQueueExecutor({ connection: REDIS_URL, queue, key: KEY });
const [mp1, mpi1, mp8, mpi8] = [make('mp1'), make('mpi1'), make('mp8'), make('mpi8')];
await Promise.all([mp1, mpi1, mp8, mpi8].map((e) => e.ready()));
const inc = (x: number): number => x + 1;

const rows: { name: string; call: (i: number) => Promise<unknown> }[] = [
  { name: 'raw BullMQ round trip (JSON { x }, x + 1)', call: (i) => raw1.call(i) },
  { name: 'run(() => 1), a new inline closure per call', call: () => mp1.run(() => 1) },
  { name: 'run(() => 1), worker --inline', call: () => mpi1.run(() => 1) },
  { name: 'run(fn, i), one function object reused', call: (i) => mp1.run(inc, i) },
  { name: 'run(() => v(i)), inline, uses a local module', call: (i) => mp1.run(() => v(i)) },
];
const lat: number[][] = rows.map(() => []);
for (const row of rows) for (let i = 0; i < 50; i++) await row.call(i);
for (let r = 0; r < ROUNDS; r++) {
  for (const [k, row] of rows.entries()) {
    for (let i = 0; i < Math.ceil(CALLS / ROUNDS); i++) {
      const s = performance.now();
      await row.call(i);
      lat[k]!.push((performance.now() - s) * 1000);
    }
  }
}

// Throughput at worker concurrency 8: JOBS calls at once, three bursts per contender, interleaved.
const items = Array.from({ length: JOBS }, (_, i) => i);
const each = (call: (i: number) => Promise<unknown>) => () => Promise.all(items.map((i) => call(i)));
const bursts: { name: string; burst: () => Promise<unknown> }[] = [
  { name: 'raw BullMQ, worker concurrency 8', burst: each((i) => raw8.call(i)) },
  { name: 'run(() => 1) inline closures, worker concurrency 8', burst: each(() => mp8.run(() => 1)) },
  { name: 'run(fn, i), one function object reused, worker concurrency 8', burst: each((i) => mp8.run(inc, i)) },
  { name: 'run(() => 1), worker --inline --concurrency 8', burst: each(() => mpi8.run(() => 1)) },
  { name: 'await map(fn, items), worker concurrency 8', burst: async () => await mp8.map(inc, items) },
];
const rates: number[][] = bursts.map(() => []);
for (let r = 0; r < 4; r++) {
  for (const [k, b] of bursts.entries()) {
    const s = performance.now();
    await b.burst();
    if (r > 0) rates[k]!.push(JOBS / ((performance.now() - s) / 1000));
  }
}

await Promise.all([mp1, mpi1, mp8, mpi8].map((e) => e.close()));
await Promise.all([raw1.close(), raw8.close()]);
console.log(
  JSON.stringify({
    latency: rows.map((r, k) => ({ name: r.name, us: median(lat[k]!) })),
    throughput: bursts.map((b, k) => ({ name: b.name, perSec: median(rates[k]!) })),
    jobs: mp8.stats.jobs,
  }),
);
