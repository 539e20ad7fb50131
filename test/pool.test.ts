// Real worker processes (dist/ build: run `npm run build` first). Functions here are self-contained; closures that
// capture local modules are covered in executors-shipping.test.ts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createPool, EncodeError, RemoteError, WorkerError, type LogHandler } from '../src/index.ts';

const logs: { worker: string; stream: number; text: string }[] = [];
const onLog: LogHandler = (worker, stream, text) => logs.push({ worker, stream, text });
const pool = createPool({ workers: 2, onLog });
after(() => pool.close({ force: true }));

const isCode = (code: string) => (e: unknown) => e instanceof WorkerError && e.code === code;

const roundTrips: { name: string; fn: (...a: never[]) => unknown; args: unknown[]; expected: unknown }[] = [
  { name: 'sum', fn: (a: number, b: number) => a + b, args: [2, 3], expected: 5 },
  { name: 'async function', fn: async (x: string) => `${x}!`, args: ['hi'], expected: 'hi!' },
  { name: 'undefined result', fn: () => undefined, args: [], expected: undefined },
  { name: 'binary data', fn: (b: Uint8Array) => b.length, args: [new Uint8Array(3_000_000)], expected: 3_000_000 },
  { name: 'large result', fn: (n: number) => 'x'.repeat(n), args: [2_000_000], expected: 'x'.repeat(2_000_000) },
];

for (const { name, fn, args, expected } of roundTrips) {
  test(`run: ${name}`, async () => {
    assert.deepEqual(await pool.call(fn as (...a: unknown[]) => unknown, args), expected);
  });
}

const remoteFailures: { name: string; fn: () => unknown; code: string; remoteName: string; message: RegExp }[] = [
  { name: 'a result that cannot be pickled', fn: () => new WeakMap(), code: 'ERR_MP_UNSUPPORTED_TYPE', remoteName: 'EncodeError', message: /WeakMap cannot be pickled/ },
  { name: 'a thrown non-Error', fn: () => { throw 42; }, code: 'ERR_MP_REMOTE', remoteName: 'NonError', message: /non-Error value was thrown: 42/ },
  { name: 'a rejected promise', fn: () => Promise.reject(new Error('async boom')), code: 'ERR_MP_REMOTE', remoteName: 'Error', message: /async boom/ },
];

for (const { name, fn, code, remoteName, message } of remoteFailures) {
  test(`remote failure: ${name}`, async () => {
    await assert.rejects(pool.run(fn), (e: unknown) => e instanceof RemoteError && e.code === code && e.remoteName === remoteName && message.test(e.message));
  });
}

test('arguments that cannot be pickled reject locally with the EncodeError and its path', async () => {
  await assert.rejects(pool.run((_m: unknown) => 1, new WeakMap()), (e: unknown) => e instanceof EncodeError && e.code === 'ERR_MP_UNSUPPORTED_TYPE' && /root\[0\]/.test(e.message));
});

test('a function may be returned, and called locally', async () => {
  const triple = await pool.run(() => (x: number) => x * 3);
  assert.equal(typeof triple, 'function');
  assert.equal((triple as (x: number) => number)(14), 42);
});

test('a worker that evicted a function asks for it again (needFunction) and the call succeeds', async () => {
  const one = createPool({ workers: 1, onLog });
  try {
    // Distinct sources (closures of one location would share one template).
    const fns = Array.from({ length: 260 }, (_, i) => new Function('x', `return x + ${i};`) as (x: number) => number);
    for (const f of fns.slice(0, 260)) await one.run(f, 0);
    const sent = one.stats.functionsSent;
    assert.equal(await one.run(fns[0]!, 5), 5); // evicted from the worker's 256-entry cache
    assert.equal(one.stats.functionsSent, sent + 1);
    assert.equal(await one.run(fns[259]!, 5), 264); // still cached: hash only
    assert.equal(one.stats.functionsSent, sent + 1);
  } finally {
    await one.close();
  }
});

test('a remote exception is a RemoteError with remote name, message, code, cause and stack', async () => {
  const err = await pool
    .run(() => {
      const cause = new RangeError('inner');
      throw Object.assign(new TypeError('outer', { cause }), { code: 'E_USER' });
    })
    .then(
      () => assert.fail('should reject'),
      (e: unknown) => e,
    );
  assert.ok(err instanceof RemoteError);
  assert.equal(err.remoteName, 'TypeError');
  assert.equal(err.code, 'E_USER');
  assert.match(err.message, /TypeError on worker p\d+: outer/);
  assert.match(err.remoteStack, /TypeError: outer\n\s+at /);
  assert.ok(err.cause instanceof RemoteError);
  assert.equal((err.cause as RemoteError).remoteName, 'RangeError');
  assert.match(err.stack ?? '', /awaited locally/);
});

const crashes: { name: string; fn: () => unknown; code: string; exit: number | null; signal: string | null }[] = [
  { name: 'process.exit(3)', fn: () => process.exit(3), code: 'ERR_MP_WORKER_EXITED', exit: 3, signal: null },
  { name: "process.kill(process.pid, 'SIGKILL')", fn: () => process.kill(process.pid, 'SIGKILL'), code: 'ERR_MP_WORKER_KILLED', exit: null, signal: 'SIGKILL' },
];

for (const { name, fn, code, exit, signal } of crashes) {
  test(`a crash mid-task (${name}) rejects that task only, and the worker is replaced`, async () => {
    const before = pool.stats.workersCrashed;
    // Queue slow tasks on both workers around the crash: they must all succeed.
    const others = Array.from({ length: 6 }, (_, i) => pool.run(async (x: number) => (await new Promise((r) => setTimeout(r, 20)), x), i));
    const err = await pool.run(fn).then(
      () => assert.fail('should reject'),
      (e: unknown) => e,
    );
    assert.ok(isCode(code)(err), String(err));
    const we = err as WorkerError & { exitCode: number | null; signal: string | null };
    assert.equal(we.exitCode, exit);
    assert.equal(we.signal, signal);
    assert.match(we.message, new RegExp(`worker ${we.worker} \\(pid \\d+\\)`));
    assert.deepEqual(await Promise.all(others), [0, 1, 2, 3, 4, 5]);
    assert.equal(pool.stats.workersCrashed, before + 1);
    assert.equal(await pool.run(() => 'still works'), 'still works');
    assert.equal(pool.workers().length, 2);
  });
}

test('a worker that runs out of heap is reported as such and replaced', async () => {
  const small = createPool({ workers: 1, execArgv: ['--max-old-space-size=32'], onLog });
  try {
    await assert.rejects(
      small.run(() => {
        const hog: number[][] = [];
        for (;;) hog.push(new Array(100_000).fill(Math.random()));
      }),
      (e: unknown) => e instanceof WorkerError && e.code === 'ERR_MP_WORKER_KILLED' && /SIGABRT: FATAL ERROR: .*heap out of memory/.test(e.message),
    );
    assert.equal(await small.run(() => 'alive'), 'alive');
  } finally {
    await small.close();
  }
});

test('timeout rejects with ERR_MP_TIMEOUT and the stuck worker is replaced', async () => {
  await assert.rejects(
    pool.call(() => {
      for (;;);
    }, [], { timeout: 300 }),
    isCode('ERR_MP_TIMEOUT'),
  );
  assert.equal(await pool.run((x: number) => x + 1, 1), 2);
});

test('AbortSignal cancels running, queued and already-aborted calls', async () => {
  const ac = new AbortController();
  const running = pool.call(() => new Promise(() => {}), [], { signal: ac.signal });
  const queued = Array.from({ length: 10 }, () => pool.call(() => new Promise(() => {}), [], { signal: ac.signal }));
  setTimeout(() => ac.abort(new Error('user pressed stop')), 100);
  await assert.rejects(running, isCode('ERR_MP_ABORTED'));
  for (const q of queued) await assert.rejects(q, isCode('ERR_MP_ABORTED'));
  await assert.rejects(pool.call(() => 1, [], { signal: AbortSignal.abort() }), isCode('ERR_MP_ABORTED'));
  assert.equal(await pool.run(() => 'ok'), 'ok');
});

test('console.log and process.stdout.write inside a task become log lines, never protocol bytes', async () => {
  logs.length = 0;
  const result = await pool.run(() => {
    console.log('hello from the task');
    console.error('warning from the task');
    process.stdout.write('x'.repeat(200_000) + '\n');
    return 42;
  });
  assert.equal(result, 42);
  const out = logs.filter((l) => l.stream === 1).map((l) => l.text).join('');
  const err = logs.filter((l) => l.stream === 2).map((l) => l.text).join('');
  assert.match(out, /hello from the task\n/);
  assert.ok(out.includes('x'.repeat(200_000)));
  assert.match(err, /warning from the task/);
  assert.match(logs[0]!.worker, /^p\d+$/);
});

test('map over 10,000 items: ordered results, arrays and async iterables', async () => {
  const items = Array.from({ length: 10_000 }, (_, i) => i);
  const out = await pool.map((x: number) => x * 2, items).toArray();
  assert.equal(out.length, 10_000);
  assert.ok(out.every((v, i) => v === i * 2));
  async function* gen() {
    for (let i = 0; i < 500; i++) yield i;
  }
  let expected = 0;
  for await (const v of pool.map(async (x: number) => x + 1, gen(), { chunkSize: 7, concurrency: 3 })) assert.equal(v, ++expected);
  assert.equal(expected, 500);
});

test('map: an item error rejects the iteration; breaking early stops the rest', async () => {
  await assert.rejects(
    pool.map((x: number) => {
      if (x === 57) throw new Error('bad item');
      return x;
    }, Array.from({ length: 100 }, (_, i) => i), { chunkSize: 10 }).toArray(),
    (e: unknown) => e instanceof RemoteError && /bad item/.test(e.message) && (e as RemoteError & { index: number }).index === 57,
  );
  let pulled = 0;
  function* endless() {
    for (;;) yield pulled++;
  }
  let seen = 0;
  for await (const v of pool.map((x: number) => x, endless(), { concurrency: 4 })) {
    assert.equal(v, seen++);
    if (seen === 20) break;
  }
  assert.ok(pulled < 100, `pulled ${pulled} items`);
});

test('map: a timeout stops a stuck chunk (its worker is replaced)', async () => {
  const started = pool.stats.workersStarted;
  await assert.rejects(
    pool.map(() => {
      for (;;);
    }, [1, 2, 3], { timeout: 300, chunkSize: 1 }).toArray(),
    isCode('ERR_MP_TIMEOUT'),
  );
  assert.deepEqual(await pool.map((x: number) => -x, [1, 2]).toArray(), [-1, -2]);
  assert.ok(pool.stats.workersStarted > started);
});

test('wrap returns an async function that runs remotely', async () => {
  const remotePid = pool.wrap(() => process.pid);
  const pids = new Set(await Promise.all(Array.from({ length: 8 }, () => remotePid())));
  assert.ok(![...pids].includes(process.pid));
});

test('workers are recycled above maxMemoryMiB without failing calls', async () => {
  const small = createPool({ workers: 1, maxMemoryMiB: 1, onLog });
  try {
    const results = await Promise.all([1, 2, 3, 4, 5].map((n) => small.run((x: number) => x * 10, n)));
    assert.deepEqual(results, [10, 20, 30, 40, 50]);
    assert.ok(small.stats.workersRecycled >= 1);
    assert.equal(small.stats.workersCrashed, 0);
  } finally {
    await small.close();
  }
});

test('close() waits for running calls; force rejects them; calls after close reject', async () => {
  const p = createPool({ workers: 1, onLog });
  const slow = p.run(async () => (await new Promise((r) => setTimeout(r, 200)), 'done'));
  await p.close();
  assert.equal(await slow, 'done');
  await assert.rejects(p.run(() => 1), isCode('ERR_MP_CLOSED'));
  const q = createPool({ workers: 1, onLog });
  const hung = q.run(() => new Promise(() => {}));
  const rejected = assert.rejects(hung, isCode('ERR_MP_CLOSED'));
  await q.ready();
  await q.close({ force: true });
  await rejected;
});

test('close() does not wait for a task abandoned by a map that stopped early', async () => {
  const p = createPool({ workers: 2, onLog });
  await p.ready();
  for await (const v of p.map((x: number) => {
    if (x === 1) for (;;);
    return x;
  }, [0, 1], { chunkSize: 1, concurrency: 2 })) {
    assert.equal(v, 0);
    break;
  }
  await p.close(); // must not hang on the worker stuck in item 1
});

test('workers exit when the parent is killed (no orphans)', async () => {
  const script = fileURLToPath(new URL('./fixtures/executors/orphan-parent.mjs', import.meta.url));
  const parent = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  for await (const chunk of parent.stdout) {
    out += String(chunk);
    if (out.includes('\n')) break;
  }
  const pids = JSON.parse(out) as number[];
  assert.equal(pids.length, 2);
  parent.kill('SIGKILL');
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  // Wait (bounded) for the workers to notice their stdin closed.
  for (let i = 0; i < 200 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(pids.filter(alive), []);
});

test('a script that forgets close() still exits (idle workers are unreferenced)', () => {
  const script = fileURLToPath(new URL('./fixtures/executors/forgotten-close.mjs', import.meta.url));
  const r = spawnSync(process.execPath, [script], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.signal, null, 'the script hung');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), '42');
});
