// A queue executor that is never closed must not keep its process alive: once nothing is in flight its sockets are
// unreferenced and, after eventsIdleMs, its BullMQ result listener (whose XREAD watchdog timer is referenced) is
// closed; the next call opens a new one that reads on from the last event seen.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis, type TestRedis } from './fixtures/queue/redis.ts';
import { startWorkerProc, type WorkerProc } from './fixtures/queue/procs.ts';
import { teardownQueueTest } from './fixtures/queue/teardown.ts';

const KEY = 'exit-test-key-0123456789';
const QUEUE = 'forgotten';
const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const script = fileURLToPath(new URL('./fixtures/queue/forgotten-executor.mjs', import.meta.url));

let redis: TestRedis;
let work = '';
let worker: WorkerProc;

before(async () => {
  redis = await startRedis();
  work = realpathSync(mkdtempSync(join(tmpdir(), 'mp-queue-exit-')));
  const cwd = mkdtempSync(join(work, 'worker-'));
  worker = await startWorkerProc([cli, 'worker', '--redis', redis.url, '--queue', QUEUE, '--inline', '--cache', join(cwd, 'cache')], {
    cwd,
    env: { ...process.env, MODULEPICKLE_KEY: KEY },
    ready: /ready on queue/,
  });
});

after(async () => {
  await teardownQueueTest({ workers: [worker], redis, dirs: [work] });
});

/** Runs the script; resolves with its output and how long it lived after its last line, or fails past `boundMs`. */
async function runForgotten(mode: 'once' | 'twice', boundMs: number): Promise<{ out: string; lingerMs: number }> {
  const child = spawn(process.execPath, [script, redis.url, QUEUE, mode], { env: { ...process.env, MODULEPICKLE_KEY: KEY }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let lastLine = Date.now();
  child.stdout.on('data', (d: Buffer) => ((out += d.toString()), (lastLine = Date.now())));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  let timer: NodeJS.Timeout | undefined;
  const ended = await Promise.race([
    new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1))),
    new Promise<'bound'>((resolve) => (timer = setTimeout(() => resolve('bound'), boundMs))),
  ]);
  clearTimeout(timer);
  if (ended === 'bound') {
    child.kill('SIGKILL');
    assert.fail(`the script did not exit within ${boundMs} ms of its start; output:\n${out}\n${err}`);
  }
  assert.equal(ended, 0, `the script failed:\n${out}\n${err}`);
  return { out, lingerMs: Date.now() - lastLine };
}

describe('a queue executor that is never closed', { timeout: 60_000 }, () => {
  test('lets its process exit after one call', async () => {
    const { out, lingerMs } = await runForgotten('once', 15_000);
    assert.match(out, /RESULT 42 /);
    // The listener closes after eventsIdleMs (1 s by default); BullMQ's close is bounded at 3 s.
    assert.ok(lingerMs < 5000, `exited ${lingerMs} ms after its call`);
    console.log(`# exited ${lingerMs} ms after its call (${out.trim()})`);
  });

  test('a call after the idle listener closed still gets its result from the events, then the process exits', async () => {
    const { out, lingerMs } = await runForgotten('twice', 20_000);
    assert.match(out, /RESULT 42 /);
    assert.match(out, /IDLE /);
    assert.match(out, /RESULT2 42 /);
    assert.ok(lingerMs < 5000, `exited ${lingerMs} ms after its last call`);
    console.log(`# exited ${lingerMs} ms after its last call (${out.trim().replace(/\n/g, '; ')})`);
  });
});
