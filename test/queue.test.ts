// The queue executor end to end: real Redis, two `modulepickle worker --redis` processes, each with its own cache
// folder and a cwd outside the project, the project folder hidden from them (as the ship tests do it: a mount
// namespace, `unshare -m`, that covers the project path with an empty tmpfs; where unshare is not permitted the
// workers can see the project, and the test names say which method ran).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createQueueExecutor, dumps, RemoteError, type QueueExecutor } from '../src/index.ts';
import { sha256Hex } from '../src/executors/queue/blob-store.ts';
import { sealFrame } from '../src/executors/queue/envelope.ts';
import { resolveKey } from '../src/executors/queue/sign.ts';
import { startRedis, type TestRedis } from './fixtures/queue/redis.ts';
import { runToExit, startWorkerProc, type WorkerProc } from './fixtures/queue/procs.ts';
import { recordEvents, type EventLog } from './fixtures/queue/events.ts';
import { teardownQueueTest } from './fixtures/queue/teardown.ts';

type Tasks = typeof import('./fixtures/queue/project/src/tasks.ts');

const KEY = 'queue-test-key-0123456789';
const QUEUE = 'e2e';
const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const fixture = fileURLToPath(new URL('./fixtures/queue/project/', import.meta.url));
const canUnshare = spawnSync('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs none /mnt 2>/dev/null || mount -t tmpfs none /tmp'], { stdio: 'ignore' }).status === 0;
const method = canUnshare ? 'project hidden by unshare -m + tmpfs' : 'project NOT hidden: unshare not permitted';

let redis: TestRedis;
let admin: Redis;
let project = '';
let work = '';
let tasks: Tasks;
let ex: QueueExecutor;
let events: EventLog;
const workers: WorkerProc[] = [];

/** Resolves once some live worker's output matches `re` (an event on its pipe, not a poll). */
const logged = (re: RegExp): Promise<RegExpMatchArray> => Promise.any(workers.filter((w) => w.child.exitCode === null && w.child.signalCode === null).map((w) => w.waitFor(re)));

async function startWorker(extra: string[] = [], env: NodeJS.ProcessEnv = { MODULEPICKLE_KEY: KEY }): Promise<WorkerProc> {
  const cwd = realpathSync(mkdtempSync(join(work, 'worker-')));
  const args = [cli, 'worker', '--redis', redis.url, '--queue', QUEUE, '--concurrency', '2', '--cache', join(cwd, 'cache'), '--lock-duration', '1500', '--stalled-interval', '500', '--max-stalled', '3', ...extra];
  const command = canUnshare ? ['unshare', '-m', 'sh', '-c', 'mount -t tmpfs none "$1" && shift && exec "$@"', 'sh', project, process.execPath] : [process.execPath];
  const w = await startWorkerProc(args, { cwd, env: { ...process.env, ...env }, ready: /ready on queue/, command });
  workers.push(w);
  return w;
}

function setFactor(n: number): void {
  const file = join(project, 'src/math.ts');
  writeFileSync(file, readFileSync(file, 'utf8').replace(/factor: number = \d+/, `factor: number = ${n}`));
}

const blobKeys = async (): Promise<Set<string>> => new Set(await admin.keys('mp:b:*'));

before(async () => {
  redis = await startRedis();
  admin = new Redis({ ...redis.connection, maxRetriesPerRequest: null });
  admin.on('error', () => {});
  project = realpathSync(mkdtempSync(join(tmpdir(), 'mp-queue-project-')));
  work = realpathSync(mkdtempSync(join(tmpdir(), 'mp-queue-work-')));
  cpSync(fixture, project, { recursive: true });
  events = await recordEvents(QUEUE, redis.connection);
  tasks = (await import(join(project, 'src/tasks.ts'))) as Tasks;
  await Promise.all([startWorker(), startWorker()]);
  ex = createQueueExecutor({ connection: redis.url, queue: QUEUE, key: KEY, dumpsOptions: { root: project } });
  await ex.ready();
});

after(async () => {
  await teardownQueueTest({ executors: [ex], workers, events: [events], clients: [admin], redis, dirs: [project, work] });
});

describe(`queue executor with two worker processes (${method})`, { timeout: 100_000 }, () => {
  test('a closure using local modules runs on a worker in another folder that cannot read the project', async () => {
    setFactor(2);
    assert.deepEqual((await ex.run((x: number) => tasks.work(x), 21)).value, 42);
    const seen = await ex.run((p: string) => tasks.whereAmI(p), project);
    assert.ok(seen.cwd.startsWith(join(work, 'worker-')), `worker cwd ${seen.cwd}`);
    if (canUnshare) assert.ok(seen.projectEntries === 'ENOENT' || (Array.isArray(seen.projectEntries) && seen.projectEntries.length === 0), `project visible: ${JSON.stringify(seen.projectEntries)}`);
    assert.ok(ex.lastBuild!.manifest.entries.some((e) => e.path === 'src/math.ts'));
  });

  test('map over 2,000 items is spread across both workers, results in order', async () => {
    const items = Array.from({ length: 2000 }, (_, i) => i);
    const out = await ex.map((x: number) => tasks.work(x), items).toArray();
    assert.deepEqual(out.map((r) => r.value), items.map((i) => i * 2));
    const hosts = new Set(out.map((r) => r.host));
    assert.deepEqual([...hosts].sort(), workers.map((w) => w.pid).sort(), 'both queue workers ran chunks');
  });

  test('an edit between calls: new code everywhere, one file blob uploaded', async () => {
    const before = await blobKeys();
    const uploaded = ex.stats.uploadedBlobs;
    setFactor(10);
    const scaled = (x: number): { value: number; host: number } => tasks.work(x);
    const out = await ex.map(scaled, Array.from({ length: 400 }, (_, i) => i), { chunkSize: 10 }).toArray();
    assert.ok(out.every((r, i) => r.value === i * 10), 'every result used the edited module');
    assert.equal(new Set(out.map((r) => r.host)).size, 2, 'both workers ran the new code');
    const added = [...(await blobKeys())].filter((k) => !before.has(k));
    const edited = `mp:b:${sha256Hex(readFileSync(join(project, 'src/math.ts')))}`;
    // The edited file, and the function payload (it carries the new manifest): nothing else.
    assert.ok(added.includes(edited), 'the edited file was uploaded');
    assert.equal(added.length, 2, `new blobs: ${added.join(', ')}`);
    assert.equal(ex.stats.uploadedBlobs - uploaded, 2);
    // Unchanged next call of the same function: nothing uploaded.
    assert.equal((await ex.run(scaled, 1)).value, 10);
    assert.equal(ex.stats.uploadedBlobs - uploaded, 2);
  });

  test('a remote error comes back typed, with its stack mapped to the local TypeScript line', async () => {
    await assert.rejects(ex.run((m: string) => tasks.fail(m), 'boom'), (err: unknown) => {
      assert.ok(err instanceof RemoteError);
      assert.equal(err.remoteName, 'RangeError');
      assert.match(err.message, /boom/);
      assert.ok(err.remoteStack.includes(`${join(project, 'src/tasks.ts')}:29:`), err.remoteStack);
      return true;
    });
  });

  test('wrap pickles once and calls remotely', async () => {
    const scaled = ex.wrap((x: number) => tasks.work(x).value);
    assert.deepEqual(await Promise.all([scaled(1), scaled(2)]), [10, 20]);
  });

  test('a worker SIGKILLed mid-job: the other worker finishes the job', async () => {
    const marker = join(work, 'slow');
    const result = ex.run((ms: number, m: string) => tasks.slow(ms, m), 1500, marker);
    const victimPid = Number((await logged(/slow started by (\d+)/))[1]);
    const victim = workers.find((w) => w.pid === victimPid);
    assert.ok(victim, `marker names pid ${victimPid}, workers are ${workers.map((w) => w.pid).join(',')}`);
    victim.child.kill('SIGKILL');
    assert.equal(await victim.exited(), 'SIGKILL');
    const finishedBy = await result;
    assert.notEqual(finishedBy, victimPid);
    assert.ok(existsSync(`${marker}-${finishedBy}`), 'the surviving worker ran the job again');
    workers.splice(workers.indexOf(victim), 1);
    await startWorker();
  });

  test('a task that crashes its process fails that call only; the queue worker keeps going', async () => {
    const pids = workers.map((w) => w.pid).sort();
    await assert.rejects(ex.run(() => process.exit(3)), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ERR_MP_WORKER_EXITED');
      assert.match(err.message, /exited with code 3/);
      return true;
    });
    assert.equal((await ex.run((x: number) => tasks.work(x), 2)).value, 20);
    assert.deepEqual(workers.filter((w) => w.child.exitCode === null).map((w) => w.pid).sort(), pids);
  });

  test('blobs of a job in flight outlive their TTL: the client and the worker refresh it', async () => {
    const short = createQueueExecutor({ connection: redis.url, queue: QUEUE, key: KEY, dumpsOptions: { root: project }, blobTtlMs: 600 });
    try {
      const slowly = (ms: number, m: string): Promise<number> => tasks.slow(ms, m);
      await short.run(slowly, 1800, join(work, 'ttl'));
      const fnKeys = [...(await blobKeys())];
      for (const k of fnKeys) assert.ok((await admin.pttl(k)) > 0, `${k} has a TTL`);
      const client = await short.client();
      const encoded = await client.store.missing([sha256Hex(readFileSync(join(project, 'src/math.ts')))]);
      assert.deepEqual(encoded, [], 'the code blob is still in Redis after 3x its TTL');
    } finally {
      await short.close();
    }
  });

  test('a poison payload fails without retry, with a clear reason', async () => {
    const poisoned = createQueueExecutor({ connection: redis.url, queue: QUEUE, key: KEY, attempts: 3, backoff: 10 });
    try {
      const client = await poisoned.client();
      const garbage = await client.store.putValue(Buffer.from('this is not a modulepickle payload'));
      const args = await dumps([]);
      const frame = (fnHash: string): Uint8Array => Buffer.concat([Buffer.from([0]), Buffer.from(fnHash, 'hex'), Buffer.alloc(4), args]);
      const undecodable = await client.submit({ frame: frame(garbage) });
      assert.equal(undecodable.ok, false);
      const missing = client.submit({ frame: frame(sha256Hex(Buffer.from('never uploaded'))) });
      await assert.rejects(missing, (err: Error & { code?: string }) => {
        assert.equal(err.code, 'ERR_MP_BLOB_MISSING');
        assert.match(err.message, /not in Redis/);
        return true;
      });
      const q = new Queue(QUEUE, { connection: redis.connection });
      try {
        const failed = await q.getFailed();
        assert.ok(failed.length >= 2);
        for (const job of failed) assert.equal(job.attemptsMade, 1, `job ${job.id} ran ${job.attemptsMade} times: ${job.failedReason.slice(0, 200)}`);
      } finally {
        await q.close();
      }
    } finally {
      await poisoned.close();
    }
  });

  test('a forged job is refused by the CLI worker, logged, and nothing runs', async () => {
    const marker = join(work, 'forged');
    const taskClient = await ex.client();
    const store = taskClient.store;
    const data = await sealFrame('job', Buffer.from('whatever'), { key: resolveKey('attacker-key-0123456789'), queue: QUEUE, jobId: 'forged-1', store });
    const q = new Queue(QUEUE, { connection: redis.connection });
    try {
      const failedForGood = events.until('forged-1', 'failed');
      await q.add('mp', data, { jobId: 'forged-1', attempts: 3 });
      await failedForGood;
      const failed = await q.getJob('forged-1');
      assert.match(failed!.failedReason, /^ERR_MP_BAD_SIGNATURE: /);
      assert.equal(failed!.attemptsMade, 1);
    } finally {
      await q.close();
    }
    assert.ok(!existsSync(marker));
    await logged(/ERR_MP_BAD_SIGNATURE job forged-1: refused, nothing was run/);
  });

  test('Redis restarted between calls: the next call re-uploads and runs', async () => {
    await redis.restart();
    assert.equal((await blobKeys()).size, 0);
    setFactor(3);
    assert.equal((await ex.run((x: number) => tasks.work(x), 5)).value, 15);
    assert.ok((await blobKeys()).size > 0, 'blobs re-uploaded');
  });

  test('close() drains in-flight calls', async () => {
    const ex2 = createQueueExecutor({ connection: redis.url, queue: QUEUE, key: KEY, dumpsOptions: { root: project } });
    const p = ex2.run((ms: number, m: string) => tasks.slow(ms, m), 200, join(work, 'drain'));
    await ex2.close();
    assert.equal(typeof (await p), 'number');
    await assert.rejects(ex2.run(() => 1), { code: 'ERR_MP_CLOSED' });
  });
});

describe('the worker command', { timeout: 30_000 }, () => {
  test('refuses to start without a key unless --insecure', async () => {
    const env = { ...process.env };
    delete env.MODULEPICKLE_KEY;
    const r = await runToExit([cli, 'worker', '--redis', redis.url, '--queue', 'nokey'], { cwd: work, env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERR_MP_NO_KEY/);
    const w = await startWorkerProc([cli, 'worker', '--redis', redis.url, '--queue', 'nokey', '--insecure'], { cwd: work, env, ready: /ready on queue/ });
    workers.push(w);
    assert.match(w.stderr(), /WITHOUT job signatures/);
  });

  test('usage errors and help', async () => {
    const usage = await runToExit([cli, 'worker', '--redis', redis.url], { cwd: work, env: process.env });
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--queue NAME/);
    const help = await runToExit([cli, 'worker', '--redis', '--help'], { cwd: work, env: process.env });
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--concurrency N/);
  });

  test('Redis unreachable at start: a clear error and exit code 1', async () => {
    const r = await runToExit([cli, 'worker', '--redis', 'redis://127.0.0.1:1', '--queue', 'x', '--connect-timeout', '1000'], { cwd: work, env: { ...process.env, MODULEPICKLE_KEY: KEY } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERR_MP_REDIS_UNREACHABLE/);
  });
});
