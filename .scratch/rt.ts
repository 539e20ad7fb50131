import { spawn } from 'node:child_process';
import { Queue, Worker, QueueEvents } from 'bullmq';
import { QueueClient } from '../src/executors/queue/client.ts';
import { startRedis } from '../test/fixtures/queue/redis.ts';
const KEY = 'test-key-0123456789abcdef';
const redis = await startRedis();
// raw
const q = new Queue('raw', { connection: redis.connection });
const ev = new QueueEvents('raw', { connection: redis.connection });
await ev.waitUntilReady();
const w = new Worker('raw', async (job) => job.data.x + 1, { connection: { ...redis.connection, maxRetriesPerRequest: null }, concurrency: 1 });
await w.waitUntilReady();
const waiters = new Map();
ev.on('completed', ({ jobId, returnvalue }) => { waiters.get(jobId)?.(returnvalue); waiters.delete(jobId); });
let n = 0;
const times = [];
for (let i = 0; i < 50; i++) {
  const t = performance.now();
  const id = `r${n++}`;
  const p = new Promise(r => waiters.set(id, r));
  await q.add('x', { x: i }, { jobId: id, removeOnComplete: true });
  await p;
  times.push(performance.now() - t);
}
times.sort((a, b) => a - b);
console.log('raw median', times[25].toFixed(2));
await w.close();
const cwd = '/tmp';
const wp = spawn(process.execPath, ['test/fixtures/queue/data-worker.mjs', redis.url, 'data', '1', '/tmp'], { env: { ...process.env, MODULEPICKLE_KEY: KEY }, stdio: ['ignore', 'ignore', 'inherit'] });
await new Promise(r => setTimeout(r, 1000));
const c = await QueueClient.connect({ connection: redis.url, queue: 'data', key: KEY });
const t2 = [];
for (let i = 0; i < 50; i++) {
  const t = performance.now();
  await c.submit({ frame: Buffer.from(JSON.stringify({ op: 'echo', value: i })) });
  t2.push(performance.now() - t);
}
t2.sort((a, b) => a - b);
console.log('transport median', t2[25].toFixed(2));
await c.close(); await ev.close(); await q.close();
wp.kill(); await redis.stop();
