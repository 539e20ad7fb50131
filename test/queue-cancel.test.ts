// Per-call timeouts and aborts on the queue executor cancel the job, on real Redis with a real
// `modulepickle worker --redis` (one job at a time, one local process, so which job waits and which runs is known):
// a waiting job is removed from Redis, a running one is stopped on its worker (its local process is replaced), a
// cancelled job is never retried, and nothing of a cancelled job stays in Redis. Every wait is on a BullMQ event of
// the job (test/fixtures/queue/events.ts), never on a sleep.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { createQueueExecutor, type QueueExecutor } from '../src/index.ts';
import { startRedis, type TestRedis } from './fixtures/queue/redis.ts';
import { startWorkerProc, type WorkerProc } from './fixtures/queue/procs.ts';
import { recordEvents, type EventLog } from './fixtures/queue/events.ts';
import { teardownQueueTest } from './fixtures/queue/teardown.ts';

const KEY = 'cancel-test-key-0123456789';
const QUEUE = 'cancel';
const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

let redis: TestRedis;
let admin: Redis;
let work = '';
let worker: WorkerProc;
let events: EventLog;
let ex: QueueExecutor;
let marks = 0;

/** A file path for one test's marker. */
const mark = (): string => join(work, `mark-${++marks}`);

/** Waits (inside the worker's process) until `file` exists: a job that runs until the test lets it go. */
const blockUntil = (file: string): Promise<string> =>
  new Promise((resolve) => {
    const t = setInterval(() => {
      if (existsSync(file)) (clearInterval(t), resolve('released'));
    }, 5);
  });

/** Notes that it ran (a line per attempt), then loops forever: only killing its process stops it. */
const spin = (file: string): never => {
  appendFileSync(file, 'ran\n');
  for (;;);
};

/** Notes that it ran, then never settles (an async task stuck on I/O). */
const hang = (file: string): Promise<never> => {
  appendFileSync(file, 'ran\n');
  console.log(`started ${file}`);
  return new Promise<never>(() => {});
};

/** Every Redis key of the queue that still mentions the job (the job hash, its lock and logs, any state list). */
async function leftovers(jobId: string): Promise<string[]> {
  const out: string[] = [];
  for (const k of await admin.keys(`bull:${QUEUE}:*`)) {
    if (k === `bull:${QUEUE}:${jobId}` || k.startsWith(`bull:${QUEUE}:${jobId}:`)) out.push(k);
    else {
      const type = await admin.type(k);
      if (type === 'list' && (await admin.lrange(k, 0, -1)).includes(jobId)) out.push(k);
      else if (type === 'zset' && (await admin.zscore(k, jobId)) !== null) out.push(k);
      else if (type === 'set' && (await admin.sismember(k, jobId)) === 1) out.push(k);
      else if (type === 'hash' && (await admin.hexists(k, jobId)) === 1) out.push(k);
    }
  }
  return out;
}

const poolPid = (): Promise<number> => ex.run(() => process.pid);
const lines = (file: string): number => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0);

before(async () => {
  redis = await startRedis();
  admin = new Redis({ ...redis.connection, maxRetriesPerRequest: null });
  admin.on('error', () => {});
  work = realpathSync(mkdtempSync(join(tmpdir(), 'mp-queue-cancel-')));
  events = await recordEvents(QUEUE, redis.connection);
  const cwd = mkdtempSync(join(work, 'worker-'));
  worker = await startWorkerProc([cli, 'worker', '--redis', redis.url, '--queue', QUEUE, '--concurrency', '1', '--processes', '1', '--cache', join(cwd, 'cache')], {
    cwd,
    env: { ...process.env, MODULEPICKLE_KEY: KEY },
    ready: /ready on queue/,
  });
  // attempts: 3, so that "never retried" means something.
  ex = createQueueExecutor({ connection: redis.url, queue: QUEUE, key: KEY, attempts: 3, backoff: 10 });
  await ex.ready();
});

after(async () => {
  await teardownQueueTest({ executors: [ex], workers: [worker], events: [events], clients: [admin], redis, dirs: [work] });
});

describe('cancelling queue jobs (real Redis, one worker running one job at a time)', { timeout: 120_000 }, () => {
  const waiting: { name: string; cancel: (call: (opts: { timeout?: number; signal?: AbortSignal }) => Promise<unknown>) => Promise<unknown>; code: string }[] = [
    { name: 'timeout', cancel: (call) => call({ timeout: 1500 }), code: 'ERR_MP_TIMEOUT' },
    {
      name: 'abort signal',
      cancel: (call) => {
        const ac = new AbortController();
        return events.mark().then((since) => {
          const p = call({ signal: ac.signal });
          void events.next('added', since).then(() => ac.abort(new Error('user gave up')));
          return p;
        });
      },
      code: 'ERR_MP_ABORTED',
    },
  ];
  for (const c of waiting) {
    test(`${c.name}: a job still waiting is removed from Redis and never runs`, async () => {
      const release = mark();
      const ran = mark();
      const blockerActive = events.next('active', await events.mark());
      const blocker = ex.call(blockUntil, [release]);
      const blockerId = await blockerActive;
      const added = events.next('added', await events.mark());
      const cancelled = c.cancel((opts) => ex.call((f: string) => writeFileSync(f, 'ran'), [ran], opts));
      const jobId = await Promise.race([added, cancelled.then(() => '', () => '')]);
      assert.notEqual(jobId, '', 'the call was added to Redis before it was cancelled');
      await assert.rejects(cancelled, { code: c.code });
      await events.until(jobId, 'removed');
      assert.deepEqual(await leftovers(jobId), [], 'nothing of the cancelled job is left in Redis');
      writeFileSync(release, '');
      assert.equal(await blocker, 'released');
      await events.until(blockerId, 'completed');
      // The worker takes jobs in order: a job after the blocker finishing means the cancelled one is gone for good.
      assert.equal(await ex.run(() => 'next'), 'next');
      assert.equal(existsSync(ran), false, 'the cancelled job never ran');
      assert.deepEqual(events.of(jobId).filter((e) => e === 'active'), []);
    });
  }

  const running: {
    name: string;
    fn: (f: string) => unknown;
    cancel: (call: (opts: { timeout?: number; signal?: AbortSignal }) => Promise<unknown>, ran: string) => Promise<unknown>;
    code: string;
  }[] = [
    // The timeout is long enough for the idle worker to take the job first (asserted below).
    { name: 'timeout, an infinite loop', fn: spin, cancel: (call) => call({ timeout: 3000 }), code: 'ERR_MP_TIMEOUT' },
    {
      name: 'abort signal once the task runs, a task that never settles',
      fn: hang,
      cancel: (call, ran) => {
        const ac = new AbortController();
        const p = call({ signal: ac.signal });
        void worker.waitFor(new RegExp(`started ${ran}`)).then(() => ac.abort());
        return p;
      },
      code: 'ERR_MP_ABORTED',
    },
  ];
  for (const c of running) {
    test(`${c.name}: the running job is stopped on its worker, its process replaced, never retried, nothing left`, async () => {
      const before = await poolPid();
      const ran = mark();
      const active = events.next('active', await events.mark());
      const call = c.cancel((opts) => ex.call(c.fn, [ran], opts), ran);
      const rejected = assert.rejects(call, (err: Error & { code?: string }) => {
        assert.equal(err.code, c.code);
        return true;
      });
      // A timeout that fired before the worker took the job would leave no 'active' event: say so instead of hanging.
      // (An abort is sent once the task printed that it started, so its job was active.)
      const jobId = c.code === 'ERR_MP_TIMEOUT' ? await Promise.race([active, call.then(() => '', () => '')]) : await active;
      assert.notEqual(jobId, '', 'the job was running when it was cancelled');
      await rejected;
      await events.until(jobId, 'removed');
      assert.deepEqual(await leftovers(jobId), [], 'nothing of the cancelled job is left in Redis');
      const after = await poolPid();
      assert.notEqual(after, before, "the task's local process was replaced");
      assert.equal(worker.child.exitCode, null, 'the queue worker itself keeps running');
      assert.ok(lines(ran) <= 1, 'the job ran at most once: no retry after the cancel');
      if (c.code === 'ERR_MP_ABORTED') assert.equal(lines(ran), 1);
      assert.match(worker.stderr(), new RegExp(`ERR_MP_CANCELLED job ${jobId}: cancelled by its client`));
      assert.deepEqual(
        events.of(jobId).filter((e) => e === 'active' || e === 'waiting' || e === 'delayed'),
        ['waiting', 'active'],
        `events of the job: ${events.of(jobId).join(', ')}`,
      );
    });
  }

  test('calls beyond maxInFlight wait locally: cancelling one never touches Redis', async () => {
    const one = createQueueExecutor({ connection: redis.url, queue: QUEUE, key: KEY, maxInFlight: 1 });
    try {
      const release = mark();
      const added: string[] = [];
      const first = events.next('added', await events.mark()).then((id) => added.push(id));
      const blocker = one.call(blockUntil, [release]);
      await first;
      const ac = new AbortController();
      const local = one.call(() => 'never', [], { signal: ac.signal });
      ac.abort();
      await assert.rejects(local, { code: 'ERR_MP_ABORTED' });
      const next = events.next('added', await events.mark());
      writeFileSync(release, '');
      assert.equal(await blocker, 'released');
      assert.equal(await one.run(() => 'after'), 'after');
      await next;
      assert.equal((await one.client()).stats.jobs, 2, 'the aborted call never became a job');
    } finally {
      await one.close();
    }
  });

  test('aborting a map cancels its jobs, waiting and running; none stays in Redis', async () => {
    const mapper = createQueueExecutor({ connection: redis.url, queue: QUEUE, key: KEY });
    const ran = mark();
    const ac = new AbortController();
    const active = events.next('active', await events.mark());
    // A task that never settles (a spinning one could not even flush its 'started' line).
    const done = mapper.map((f: string) => hang(f), [ran, ran, ran, ran, ran, ran], { chunkSize: 1, concurrency: 4, signal: ac.signal }).toArray();
    const first = await active;
    await worker.waitFor(new RegExp(`started ${ran}`)); // the first chunk runs: abort with it running
    ac.abort();
    await assert.rejects(done, { code: 'ERR_MP_ABORTED' });
    const jobs = (await mapper.client()).stats.jobs;
    await mapper.close(); // waits for the cancels it started
    assert.ok(jobs >= 1 && jobs <= 4, `${jobs} jobs were added`);
    // One client numbers its jobs <prefix>-1, -2, ...
    const prefix = first.slice(0, first.lastIndexOf('-'));
    for (let n = 1; n <= jobs; n++) {
      const id = `${prefix}-${n}`;
      await events.until(id, 'removed');
      assert.deepEqual(await leftovers(id), [], `job ${id} left nothing`);
    }
    assert.equal(lines(ran), 1, 'only the running chunk had started');
    assert.equal(await ex.run(() => 'after the map'), 'after the map');
  });

  test('close({ force: true }) cancels the jobs in flight', async () => {
    const ex2 = createQueueExecutor({ connection: redis.url, queue: QUEUE, key: KEY });
    const ran = mark();
    const active = events.next('active', await events.mark());
    const p = ex2.call(spin, [ran]);
    const jobId = await active;
    const rejected = assert.rejects(p, { code: 'ERR_MP_CLOSED' });
    await ex2.close({ force: true });
    await rejected;
    await events.until(jobId, 'removed');
    assert.deepEqual(await leftovers(jobId), []);
    assert.equal(await ex.run(() => 'still works'), 'still works');
  });
});
