import { Queue, Worker, QueueEvents, UnrecoverableError } from 'bullmq';
import { startRedis } from '/work/wt-queue/test/fixtures/queue/redis.ts';
const r = await startRedis();
const connection = r.connection;
const q = new Queue('t', { connection });
const ev = new QueueEvents('t', { connection });
await ev.waitUntilReady();
let n = 0;
const w = new Worker('t', async (job) => {
  if (job.data.kind === 'fail') { n++; throw new Error('boom ' + job.attemptsMade); }
  if (job.data.kind === 'unrec') throw new UnrecoverableError('nope');
  return { ok: job.data.x };
}, { connection: { ...connection, maxRetriesPerRequest: null }, concurrency: 8 });
ev.on('completed', (a) => console.log('completed', JSON.stringify(a)));
ev.on('failed', (a) => console.log('failed', JSON.stringify(a)));
ev.on('retries-exhausted', (a) => console.log('exhausted', JSON.stringify(a)));
await q.add('x', { x: 1 }, { jobId: 'a1', removeOnComplete: true, removeOnFail: true });
await q.add('x', { kind: 'fail' }, { jobId: 'a2', attempts: 3, backoff: { type: 'fixed', delay: 50 }, removeOnComplete: true, removeOnFail: true });
await q.add('x', { kind: 'unrec' }, { jobId: 'a3', attempts: 3, removeOnComplete: true, removeOnFail: true });
await new Promise(r => setTimeout(r, 1000));
console.log('n', n);
await w.close(); await ev.close(); await q.close(); await r.stop();
