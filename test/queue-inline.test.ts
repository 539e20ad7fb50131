// `modulepickle worker --redis ... --inline`: tasks run in the queue worker's own process (no local pool), on real
// Redis. The same code shipping as the pool mode (a closure that uses a local module, an edit between calls), and
// what a cancel means there: the job fails and is removed at once, the task's result is dropped, the worker goes on.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { createQueueExecutor, RemoteError, type QueueExecutor } from '../src/index.ts';
import { startRedis, type TestRedis } from './fixtures/queue/redis.ts';
import { startWorkerProc, type WorkerProc } from './fixtures/queue/procs.ts';
import { recordEvents, type EventLog } from './fixtures/queue/events.ts';
import { teardownQueueTest } from './fixtures/queue/teardown.ts';

type Tasks = typeof import('./fixtures/queue/project/src/tasks.ts');

const KEY = 'inline-test-key-0123456789';
const QUEUE = 'inline';
const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const fixture = fileURLToPath(new URL('./fixtures/queue/project/', import.meta.url));

let redis: TestRedis;
let admin: Redis;
let work = '';
let project = '';
let tasks: Tasks;
let worker: WorkerProc;
let events: EventLog;
let ex: QueueExecutor;

function setFactor(n: number): void {
  const file = join(project, 'src/math.ts');
  writeFileSync(file, readFileSync(file, 'utf8').replace(/factor: number = \d+/, `factor: number = ${n}`));
}

before(async () => {
  redis = await startRedis();
  admin = new Redis({ ...redis.connection, maxRetriesPerRequest: null });
  admin.on('error', () => {});
  work = realpathSync(mkdtempSync(join(tmpdir(), 'mp-queue-inline-')));
  project = join(work, 'project');
  cpSync(fixture, project, { recursive: true });
  tasks = (await import(join(project, 'src/tasks.ts'))) as Tasks;
  events = await recordEvents(QUEUE, redis.connection);
  const cwd = mkdtempSync(join(work, 'worker-'));
  worker = await startWorkerProc([cli, 'worker', '--redis', redis.url, '--queue', QUEUE, '--inline', '--cache', join(cwd, 'cache')], {
    cwd,
    env: { ...process.env, MODULEPICKLE_KEY: KEY },
    ready: /ready on queue/,
  });
  ex = createQueueExecutor({ connection: redis.url, queue: QUEUE, key: KEY, dumpsOptions: { root: project } });
  await ex.ready();
});

after(async () => {
  await teardownQueueTest({ executors: [ex], workers: [worker], events: [events], clients: [admin], redis, dirs: [work] });
});

describe('an inline queue worker (--inline)', { timeout: 60_000 }, () => {
  test('says so at start, and runs tasks in its own process', async () => {
    assert.match(worker.stderr(), /tasks run inline, in this process/);
    assert.equal(await ex.run(() => process.pid), worker.pid);
  });

  test('a closure using a local module runs, and an edit between calls is seen', async () => {
    setFactor(2);
    assert.equal((await ex.run((x: number) => tasks.work(x), 21)).value, 42);
    setFactor(5);
    assert.equal((await ex.run((x: number) => tasks.work(x), 2)).value, 10);
    assert.deepEqual(await ex.map((x: number) => tasks.work(x).value, [1, 2, 3]), [5, 10, 15]);
  });

  test('a remote error comes back typed, its stack mapped to the local file', async () => {
    await assert.rejects(ex.run((m: string) => tasks.fail(m), 'inline boom'), (err: unknown) => {
      assert.ok(err instanceof RemoteError);
      assert.equal(err.remoteName, 'RangeError');
      assert.ok(err.remoteStack.includes(join(project, 'src/tasks.ts')), err.remoteStack);
      return true;
    });
  });

  test('a cancelled running task: its job fails and is removed at once, its result dropped, the worker goes on', async () => {
    const ac = new AbortController();
    const active = events.next('active', await events.mark());
    const call = ex.call(() => new Promise<string>(() => {}), [], { signal: ac.signal });
    const rejected = assert.rejects(call, { code: 'ERR_MP_ABORTED' });
    const jobId = await active;
    ac.abort();
    await rejected;
    await events.until(jobId, 'removed');
    assert.equal(await admin.exists(`bull:${QUEUE}:${jobId}`), 0);
    assert.match(worker.stderr(), new RegExp(`ERR_MP_CANCELLED job ${jobId}`));
    assert.equal(await ex.run(() => 'still here'), 'still here');
  });
});
