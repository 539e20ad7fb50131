// The queue transport on real Redis with two real worker processes, using data-only tasks (JSON frames, no code
// shipping): blob store, signatures, BullMQ plumbing and faults. End-to-end code shipping is in queue.test.ts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { RedisBlobStore, sha256Hex } from '../src/executors/queue/blob-store.ts';
import { QueueClient, type FrameOutcome } from '../src/executors/queue/client.ts';
import { sealFrame } from '../src/executors/queue/envelope.ts';
import { checkSignature, resolveKey, sign } from '../src/executors/queue/sign.ts';
import { createQueueWorker } from '../src/executors/queue/worker.ts';
import { startRedis, type TestRedis } from './fixtures/queue/redis.ts';
import { runToExit, startWorkerProc, type WorkerProc } from './fixtures/queue/procs.ts';
import { recordEvents, type EventLog } from './fixtures/queue/events.ts';
import { teardownQueueTest } from './fixtures/queue/teardown.ts';

const KEY = 'test-key-0123456789abcdef';
const workerScript = fileURLToPath(new URL('./fixtures/queue/data-worker.mjs', import.meta.url));
const enc = (v: unknown): Uint8Array => Buffer.from(JSON.stringify(v));
const dec = (o: FrameOutcome): Record<string, unknown> => JSON.parse(Buffer.from(o.frame).toString('utf8')) as Record<string, unknown>;

let redis: TestRedis;
let admin: Redis;
let tmp: string;
const workers: WorkerProc[] = [];

/** Resolves once some live worker's output matches `re` (an event on its pipe, not a poll). */
const logged = (re: RegExp): Promise<RegExpMatchArray> => Promise.any(workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null).map((w) => w.waitFor(re)));

async function spawnWorker(queue: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<WorkerProc> {
  const cwd = mkdtempSync(join(tmp, 'w-'));
  const w = await startWorkerProc([workerScript, redis.url, queue, '4', tmp], { cwd, env: { ...process.env, MODULEPICKLE_KEY: KEY, ...extraEnv } });
  workers.push(w);
  return w;
}

before(async () => {
  redis = await startRedis();
  admin = new Redis({ ...redis.connection, maxRetriesPerRequest: null });
  admin.on('error', () => {});
  tmp = mkdtempSync(join(tmpdir(), 'mp-queue-transport-'));
});

after(async () => {
  await teardownQueueTest({ workers, clients: [admin], redis, dirs: [tmp] });
});

describe('signatures', () => {
  const key = resolveKey(KEY);
  const fields = { kind: 'job' as const, queue: 'q1', jobId: 'j1', body: '{"f":"AA=="}' };
  const good = sign(key, fields);
  const cases: { name: string; fields: typeof fields; sig: unknown; want: string | undefined }[] = [
    { name: 'valid', fields, sig: good, want: undefined },
    { name: 'unsigned', fields, sig: '', want: 'unsigned' },
    { name: 'missing', fields, sig: undefined, want: 'unsigned' },
    { name: 'forged', fields, sig: '0'.repeat(64), want: 'forged' },
    { name: 'altered body', fields: { ...fields, body: '{"f":"AB=="}' }, sig: good, want: 'forged' },
    { name: 'replayed to another queue', fields: { ...fields, queue: 'q2' }, sig: good, want: 'forged' },
    { name: 'copied to another job id', fields: { ...fields, jobId: 'j2' }, sig: good, want: 'forged' },
    { name: 'result signature used as job', fields: { ...fields }, sig: sign(key, { ...fields, kind: 'result' }), want: 'forged' },
    { name: 'other key', fields, sig: sign(resolveKey('another-key-0123456789'), fields), want: 'forged' },
    { name: 'not hex', fields, sig: 'zz', want: 'forged' },
  ];
  for (const c of cases) test(c.name, () => assert.equal(checkSignature(key, c.fields, c.sig), c.want));
  test('short keys are refused', () => assert.throws(() => resolveKey('short'), { code: 'ERR_MP_WEAK_KEY' }));
  test('key from MODULEPICKLE_KEY', () => assert.deepEqual(resolveKey(undefined, { MODULEPICKLE_KEY: KEY }), Buffer.from(KEY)));
});

describe('blob store', { timeout: 30_000 }, () => {
  test('uploads only missing blobs, manifest last, batched', async () => {
    const store = new RedisBlobStore(admin, { prefix: 'bs1', batchCount: 300 });
    const blobs = new Map<string, Uint8Array>();
    for (let i = 0; i < 1000; i++) {
      const b = Buffer.from(`file ${i}`);
      blobs.set(sha256Hex(b), b);
    }
    const load = (id: string): Uint8Array => blobs.get(id)!;
    const first = await store.ensureManifest('m1', Buffer.from('manifest 1'), [...blobs.keys()], load);
    assert.equal(first.uploaded, 1001);
    assert.equal((await admin.keys('bs1:b:*')).length, 1000);
    assert.ok(await admin.exists('bs1:m:m1'));
    // Unchanged: nothing uploaded, not even an existence check (known present).
    assert.deepEqual(await store.ensureManifest('m1', Buffer.from('manifest 1'), [...blobs.keys()], load), { checked: 0, uploaded: 0, bytes: 0 });
    // One edited file: one blob and the new manifest.
    const edited = Buffer.from('file 0 edited');
    blobs.set(sha256Hex(edited), edited);
    const ids2 = [...blobs.keys()].filter((id) => id !== sha256Hex(Buffer.from('file 0')));
    const second = await store.ensureManifest('m2', Buffer.from('manifest 2'), ids2, load);
    assert.equal(second.uploaded, 2);
    assert.equal((await admin.keys('bs1:b:*')).length, 1001);
    // A fresh store (another client) checks Redis: present, so nothing is uploaded.
    const other = new RedisBlobStore(admin, { prefix: 'bs1' });
    assert.equal((await other.ensureManifest('m2', Buffer.from('manifest 2'), ids2, load)).uploaded, 0);
    // Blob and manifest deleted behind our back: a client that checks again re-uploads the missing blob alone.
    await admin.del(`bs1:b:${sha256Hex(edited)}`, 'bs1:m:m2');
    const third = new RedisBlobStore(admin, { prefix: 'bs1' });
    assert.equal((await third.ensureManifest('m2', Buffer.from('manifest 2'), ids2, load)).uploaded, 2);
  });

  test('TTL is set and touch refreshes it', async () => {
    const store = new RedisBlobStore(admin, { prefix: 'bs2', ttlMs: 60_000 });
    const id = await store.putValue(Buffer.from('value'));
    await admin.pexpire(`bs2:b:${id}`, 1000);
    await store.touch([id]);
    assert.ok((await admin.pttl(`bs2:b:${id}`)) > 30_000);
    assert.deepEqual(await store.missing([id, sha256Hex(Buffer.from('absent'))]), [sha256Hex(Buffer.from('absent'))]);
  });

  test('verified reads refuse altered blobs; missing blobs are a clear error', async () => {
    const store = new RedisBlobStore(admin, { prefix: 'bs3' });
    const id = await store.putValue(Buffer.from('original'));
    await admin.set(`bs3:b:${id}`, 'tampered');
    await assert.rejects(store.getBlob(id, true), { code: 'ERR_MP_BLOB_CORRUPT' });
    await assert.rejects(store.getBlob(sha256Hex(Buffer.from('nope'))), { code: 'ERR_MP_BLOB_MISSING' });
    assert.throws(() => store.blobKey('../../etc'), { code: 'ERR_MP_BAD_BLOB_ID' });
  });
});

describe('transport with two worker processes', { timeout: 90_000 }, () => {
  const queue = 'data';
  let client: QueueClient;
  let events: EventLog;
  before(async () => {
    events = await recordEvents(queue, redis.connection);
    await Promise.all([spawnWorker(queue), spawnWorker(queue)]);
    client = await QueueClient.connect({ connection: redis.url, queue, key: KEY, sweepIntervalMs: 500 });
  });
  after(async () => {
    await client.close();
    await events.close();
  });

  test('round trip', async () => {
    const out = await client.submit({ frame: enc({ op: 'echo', value: 'hi' }) });
    assert.equal(out.ok, true);
    assert.equal(dec(out).value, 'hi');
  });

  test('2,000 jobs spread across both workers', async () => {
    const subs = Array.from({ length: 2000 }, (_, i) => ({ frame: enc({ op: 'echo', value: i }) }));
    const outs = await Promise.all(await client.submitMany(subs));
    assert.deepEqual(outs.map((o) => dec(o).value), subs.map((_, i) => i));
    const pids = new Set(outs.map((o) => dec(o).pid));
    assert.equal(pids.size, 2, `expected both workers to take jobs, got pids ${[...pids].join(',')}`);
  });

  test('big arguments and results travel as blobs, never inline in job data', async () => {
    const data = 'y'.repeat(300_000);
    const out = await client.submit({ frame: enc({ op: 'size', data }) });
    assert.equal(dec(out).length, 300_000);
    const big = await client.submit({ frame: enc({ op: 'big', n: 500_000 }) });
    assert.equal((dec(big).data as string).length, 500_000);
    let maxData = 0;
    let maxReturn = 0;
    for (const k of await admin.keys(`bull:${queue}:*`)) {
      if ((await admin.type(k)) !== 'hash') continue;
      const [d, r] = await admin.hmget(k, 'data', 'returnvalue');
      maxData = Math.max(maxData, d?.length ?? 0);
      maxReturn = Math.max(maxReturn, r?.length ?? 0);
    }
    assert.ok(maxData < 2048, `job data up to ${maxData} bytes`);
    assert.ok(maxReturn < 2048, `return values up to ${maxReturn} bytes`);
  });

  test('a user exception comes back as an error frame', async () => {
    const out = await client.submit({ frame: enc({ op: 'throw', message: 'nope' }) });
    assert.equal(out.ok, false);
    assert.equal(dec(out).message, 'nope');
  });

  test('an unreferenced client closes its idle result listener, and opens it again for the next call', async () => {
    // No sweep: a result whose event were missed would never arrive, so every result below came through a listener.
    const c = await QueueClient.connect({ connection: redis.url, queue, key: KEY, eventsIdleMs: 30, sweepIntervalMs: 600_000 });
    // BullMQ names QueueEvents connections bull:<base64 queue>:qe; this queue's other listeners (the shared client's
    // and the event log's) stay open all along.
    const name = `bull:${Buffer.from(queue).toString('base64')}:qe`;
    const listeners = async (): Promise<number> => ((await admin.client('LIST')) as string).split('\n').filter((l) => l.includes(` name=${name} `)).length;
    const until = async (want: (n: number) => boolean, what: string): Promise<number> => {
      const deadline = Date.now() + 5000;
      for (;;) {
        const n = await listeners();
        if (want(n)) return n;
        if (Date.now() > deadline) assert.fail(`${what}: still ${n} listeners after 5 s`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    try {
      const base = 2;
      await until((n) => n === base + 1, 'the new client listens');
      c.setRef(false);
      // Pending for 10x eventsIdleMs: the listener stays until the result came.
      const out = await c.submit({ frame: enc({ op: 'slow', id: 'idle-1', ms: 300 }) });
      assert.equal(out.ok, true);
      await until((n) => n === base, 'the idle listener is closed');
      assert.equal(dec(await c.submit({ frame: enc({ op: 'echo', value: 'reopened' }) })).value, 'reopened');
      await until((n) => n === base, 'closed again once idle');
      c.setRef(true);
      await until((n) => n === base + 1, 'a referenced client listens again');
    } finally {
      await c.close();
    }
    await until((n) => n === 2, 'close() closes it');
  });

  test('attempts: a transient failure is retried', async () => {
    const c = await QueueClient.connect({ connection: redis.url, queue, key: KEY, attempts: 3, backoff: { type: 'fixed', delay: 10 } });
    try {
      const out = await c.submit({ frame: enc({ op: 'flaky', id: 'a1' }) });
      assert.equal(dec(out).attempt, 2);
    } finally {
      await c.close();
    }
  });

  test('a poison payload fails once, without retry, with a clear reason', async () => {
    const c = await QueueClient.connect({ connection: redis.url, queue, key: KEY, attempts: 5 });
    const q = new Queue(queue, { connection: redis.connection });
    try {
      let jobId = '';
      await assert.rejects(c.submit({ frame: Buffer.from('\x00not json') }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_MP_BAD_PAYLOAD');
        assert.match(err.message, /frame is not JSON/);
        jobId = /job (\S+) on queue/.exec(err.message)?.[1] ?? '';
        return true;
      });
      // Failed for good after one attempt (the client heard of it from the final 'failed' event): nothing runs it again.
      const job = await q.getJob(jobId);
      assert.equal(await job?.getState(), 'failed');
      assert.equal(job?.attemptsMade, 1, 'the poison job ran exactly once');
      // The worker's log line travels on its own pipe, so it may arrive after the event: wait for it, then count.
      const line = new RegExp(`"code":"ERR_MP_BAD_PAYLOAD","jobId":"${jobId}"`, 'g');
      await logged(line);
      assert.equal(workers.map((w) => w.stderr()).join('').match(line)?.length, 1, 'one log line for the one attempt');
    } finally {
      await q.close();
      await c.close();
    }
  });

  const raw = async (jobId: string, data: unknown, q = queue): Promise<string> => {
    const rq = new Queue(q, { connection: redis.connection });
    try {
      const finished = Promise.race([events.until(jobId, 'failed'), events.until(jobId, 'completed')]);
      await rq.add('mp', data, { jobId, attempts: 3 });
      await finished;
      const again = await rq.getJob(jobId);
      return again?.failedReason ?? 'completed';
    } finally {
      await rq.close();
    }
  };
  const store = (): RedisBlobStore => new RedisBlobStore(admin);
  const hostile: { name: string; data: () => Promise<unknown>; code: string }[] = [
    {
      name: 'unsigned job',
      data: async () => ({ ...(await sealFrame('job', enc({ op: 'slow', id: 'h1', ms: 1 }), { key: undefined, queue, jobId: 'h1', store: store() })) }),
      code: 'ERR_MP_UNSIGNED_JOB',
    },
    {
      name: 'forged job',
      data: async () => ({ ...(await sealFrame('job', enc({ op: 'slow', id: 'h2', ms: 1 }), { key: resolveKey('attacker-key-0123456789'), queue, jobId: 'h2', store: store() })) }),
      code: 'ERR_MP_BAD_SIGNATURE',
    },
    {
      name: 'job replayed from another queue',
      data: async () => ({ ...(await sealFrame('job', enc({ op: 'slow', id: 'h3', ms: 1 }), { key: resolveKey(KEY), queue: 'other', jobId: 'h3', store: store() })) }),
      code: 'ERR_MP_BAD_SIGNATURE',
    },
    {
      name: 'altered job',
      data: async () => {
        const env = await sealFrame('job', enc({ op: 'echo', value: 1 }), { key: resolveKey(KEY), queue, jobId: 'h4', store: store() });
        return { ...env, body: JSON.stringify({ f: Buffer.from(JSON.stringify({ op: 'slow', id: 'h4', ms: 1 })).toString('base64') }) };
      },
      code: 'ERR_MP_BAD_SIGNATURE',
    },
    { name: 'not an envelope', data: async () => ({ hello: 'world' }), code: 'ERR_MP_BAD_JOB' },
    { name: 'future format version', data: async () => ({ mp: 99, body: '{}', sig: '' }), code: 'ERR_MP_QUEUE_VERSION' },
  ];
  for (const h of hostile) {
    test(`refused and logged, nothing run: ${h.name}`, async () => {
      const jobId = h.name.replace(/\W+/g, '-');
      const data = await h.data();
      const id = (data as { body?: string }).body ? jobId : jobId;
      const reason = await raw(id, data);
      assert.match(reason, new RegExp(`^${h.code}: `));
      assert.ok(!readdirSync(tmp).some((f) => f.startsWith('started-h')), 'no hostile job ran');
      await logged(new RegExp(`"code":"${h.code}","jobId":"${id}","message":"refused, nothing was run`));
    });
  }

  test('a forged result is refused by the client', async () => {
    const rogueQueue = 'rogue';
    const rogue = new Worker(rogueQueue, async () => ({ mp: 1, body: JSON.stringify({ f: Buffer.from('{}').toString('base64') }), sig: 'f'.repeat(64) }), {
      connection: { ...redis.connection, maxRetriesPerRequest: null },
    });
    const c = await QueueClient.connect({ connection: redis.url, queue: rogueQueue, key: KEY });
    try {
      await assert.rejects(c.submit({ frame: enc({ op: 'echo' }) }), { code: 'ERR_MP_BAD_SIGNATURE' });
    } finally {
      await c.close();
      await rogue.close();
    }
  });

  test('close() drains in-flight jobs', async () => {
    const c = await QueueClient.connect({ connection: redis.url, queue, key: KEY });
    const p = c.submit({ frame: enc({ op: 'slow', id: 'drain', ms: 300 }) });
    await c.close();
    assert.equal((await p).ok, true);
    await assert.rejects(c.submit({ frame: enc({ op: 'echo' }) }), { code: 'ERR_MP_CLOSED' });
  });

  test('a worker SIGKILLed mid-job: the other worker finishes the job', async () => {
    const p = client.submit({ frame: enc({ op: 'slow', id: 'kill', ms: 1500 }) });
    const victimPid = Number((await logged(/STARTED kill (\d+)/))[1]);
    const victim = workers.find((w) => w.pid === victimPid)!;
    victim.child.kill('SIGKILL');
    assert.equal(await victim.exited(), 'SIGKILL');
    const out = await p;
    assert.equal(out.ok, true);
    assert.notEqual(dec(out).pid, victimPid);
    workers.splice(workers.indexOf(victim), 1);
    await spawnWorker(queue);
  });

  test('Redis restarted between calls: clients and workers reconnect', async () => {
    await redis.restart();
    const out = await client.submit({ frame: enc({ op: 'echo', value: 'after restart' }) });
    assert.equal(dec(out).value, 'after restart');
  });
});

describe('refusing to start', { timeout: 30_000 }, () => {
  test('a worker without a key refuses to start unless --insecure', async () => {
    const env = { ...process.env };
    delete env.MODULEPICKLE_KEY;
    const r = await runToExit([workerScript, redis.url, 'nokey', '1', tmp], { cwd: tmp, env });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /ERR_MP_NO_KEY|refusing to start without a signing key/);
    const w = await startWorkerProc([workerScript, redis.url, 'nokey', '1', tmp, '--insecure'], { cwd: tmp, env });
    workers.push(w);
    assert.match(w.stderr(), /WITHOUT job signatures/);
    const c = await QueueClient.connect({ connection: redis.url, queue: 'nokey', insecure: true });
    try {
      assert.equal(dec(await c.submit({ frame: enc({ op: 'echo', value: 3 }) })).value, 3);
    } finally {
      await c.close();
    }
  });

  test('a client without a key refuses to start', async () => {
    const saved = process.env.MODULEPICKLE_KEY;
    delete process.env.MODULEPICKLE_KEY;
    try {
      await assert.rejects(QueueClient.connect({ connection: redis.url, queue: 'x' }), { code: 'ERR_MP_NO_KEY' });
    } finally {
      if (saved !== undefined) process.env.MODULEPICKLE_KEY = saved;
    }
  });

  test('Redis unreachable at start: a clear error, not a hang', async () => {
    const { freePort } = await import('./fixtures/queue/redis.ts');
    const port = await freePort();
    await assert.rejects(QueueClient.connect({ connection: `redis://127.0.0.1:${port}`, queue: 'x', key: KEY, connectTimeoutMs: 500 }), {
      code: 'ERR_MP_REDIS_UNREACHABLE',
    });
    await assert.rejects(
      createQueueWorker({ connection: `redis://127.0.0.1:${port}`, queue: 'x', key: KEY, connectTimeoutMs: 500, runner: async () => ({ ok: true, frame: new Uint8Array() }) }),
      { code: 'ERR_MP_REDIS_UNREACHABLE' },
    );
  });

  test('Redis gone mid-run for too long: in-flight calls fail with a clear error', async () => {
    const c = await QueueClient.connect({ connection: redis.url, queue: 'nobody-listens', key: KEY, reconnectTimeoutMs: 300, sweepIntervalMs: 100 });
    const job = c.enqueue({ frame: enc({ op: 'echo' }) });
    await job.added;
    await redis.stop();
    await assert.rejects(job.outcome, { code: 'ERR_MP_REDIS_UNREACHABLE' });
    await redis.restart();
    await c.close();
  });
});
