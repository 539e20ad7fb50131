// The queue tests' private Redis (fixtures/queue/redis.ts) must never outlive the process that started it, however
// that process ends: killed by SIGKILL (no exit hook runs), SIGTERM or SIGINT (default handlers: no exit hook
// either), or a normal exit.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { startRedis } from './fixtures/queue/redis.ts';

const fixtureUrl = new URL('./fixtures/queue/redis.ts', import.meta.url).href;

/** Resolves once `pid` no longer exists (kill(pid, 0) throws ESRCH); rejects after `boundMs`. */
async function gone(pid: number, after = 'its test process ended', boundMs = 10_000): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') return Date.now() - t0;
      throw err;
    }
    if (Date.now() - t0 > boundMs) throw new Error(`redis-server ${pid} still runs ${boundMs} ms after ${after}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Starts a node process that starts the fixture Redis and prints its pid; then `end` ends that process. Resolves to
 * redis' pid once the process has exited.
 */
async function orphan(end: 'SIGKILL' | 'SIGTERM' | 'SIGINT' | 'exit'): Promise<number> {
  const script = `
    import { startRedis } from ${JSON.stringify(fixtureUrl)};
    const r = await startRedis();
    console.log('REDIS ' + r.pid);
    // 'exit': a normal exit once told to (a line on stdin), after the parent saw redis run.
    if (${JSON.stringify(end)} === 'exit') process.stdin.once('data', () => process.exit(0));
    setInterval(() => {}, 1000);
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const pid = await new Promise<number>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /REDIS (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    void exited.then(() => (/REDIS \d+/.test(out) ? undefined : reject(new Error(`the child exited before starting redis:\n${err}`))));
  });
  assert.ok(pid > 0);
  process.kill(pid, 0); // it runs
  if (end === 'exit') child.stdin.write('exit\n');
  else child.kill(end);
  await exited;
  return pid;
}

describe('the test Redis fixture', { timeout: 60_000 }, () => {
  for (const end of ['SIGKILL', 'SIGTERM', 'SIGINT', 'exit'] as const) {
    test(`redis-server does not outlive its test process (${end})`, async () => {
      const pid = await orphan(end);
      const ms = await gone(pid).catch((err: unknown) => {
        process.kill(pid, 'SIGKILL'); // do not leak it ourselves
        throw err;
      });
      console.log(`# redis ${pid} gone ${ms} ms after its test process ended by ${end}`);
    });
  }

  test('redis-server does not outlive its watchdog either (SIGKILL; Linux parent-death signal)', { skip: process.platform !== 'linux' && 'needs /proc and setpriv (Linux)' }, async () => {
    const redis = await startRedis();
    const pid = redis.pid;
    // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so read after the last ')'.
    const ppid = Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(')').at(-1)!.trim().split(' ')[1]);
    assert.notEqual(ppid, process.pid, 'redis runs under a watchdog, not as our child');
    process.kill(ppid, 'SIGKILL');
    await gone(pid, 'its watchdog was SIGKILLed').catch((err: unknown) => {
      process.kill(pid, 'SIGKILL');
      throw err;
    });
    await redis.stop();
  });

  test('stop() and restart() end the server they replace', async () => {
    const redis = await startRedis();
    const first = redis.pid;
    await redis.restart();
    assert.notEqual(redis.pid, first);
    await gone(first, 'restart()');
    const second = redis.pid;
    await redis.stop();
    await gone(second, 'stop()');
  });
});
