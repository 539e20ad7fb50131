// createThreadPool with real worker threads: closures, classes and instances travel as with the process pool;
// a SharedArrayBuffer arrives shared; `transfer` moves buffers both ways; a thread that throws, exits, runs out of
// heap or loops forever fails only its own task with a typed error and is replaced; output is forwarded; a
// forgotten pool does not keep a script alive. (Shipped TypeScript, edits between calls and mapped stacks run in
// executors-shipping.test.ts, `map` in executors-map.test.ts, both with a threads row.)
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createThreadPool, RemoteError, transfer, WorkerError, type Executor } from '../src/index.ts';

let work = '';
let pool: Executor;
const logs: { id: string; stream: number; text: string }[] = [];

before(async () => {
  work = realpathSync(mkdtempSync(join(tmpdir(), 'mp-threads-')));
  pool = createThreadPool({ threads: 2, cacheDir: join(work, 'cache'), onLog: (id, stream, text) => void logs.push({ id, stream, text }) });
  await pool.ready();
});
after(async () => {
  await pool.close();
  rmSync(work, { recursive: true, force: true });
});

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
  norm(): number {
    return Math.hypot(this.x, this.y);
  }
}

describe('values and functions travel as with the process pool', () => {
  const rows: { name: string; run(p: Executor): Promise<unknown>; expect: unknown }[] = [
    { name: 'a closure over a captured value', run: (p) => { const k = 40; return p.run((x: number) => x + k, 2); }, expect: 42 },
    { name: 'a class instance argument, its method called there', run: (p) => p.run((pt: Point) => pt.norm(), new Point(3, 4)), expect: 5 },
    { name: 'a class instance result, its methods with it', run: async (p) => (await p.run(() => new Point(3, 4))).norm(), expect: 5 },
    { name: 'cycles and shared references', run: async (p) => { const r = await p.run(() => { const a: Record<string, unknown> = {}; a['self'] = a; return [a, a]; }); return r[0] === r[1] && (r[0] as { self: unknown }).self === r[0]; }, expect: true },
    { name: 'an async function', run: (p) => p.run(async (x: number) => { await new Promise((r) => setTimeout(r, 5)); return x * 2; }, 21), expect: 42 },
    { name: 'wrap', run: (p) => p.wrap((a: number, b: number) => a * b)(6, 7), expect: 42 },
    { name: 'await map, in order', run: async (p) => await p.map((x: number) => x * x, [1, 2, 3, 4]), expect: [1, 4, 9, 16] },
  ];
  for (const row of rows) test(row.name, async () => assert.deepEqual(await row.run(pool), row.expect));
});

describe('shared and moved memory', () => {
  test('a SharedArrayBuffer argument arrives shared: the thread writes, this side reads', async () => {
    const sab = new SharedArrayBuffer(16);
    const view = new Int32Array(sab, 4, 2);
    await pool.run((v: Int32Array) => {
      Atomics.store(v, 1, 42);
    }, view);
    assert.equal(new Int32Array(sab)[2], 42);
  });

  test('a SharedArrayBuffer result is the same memory as the one the thread holds', async () => {
    const p = createThreadPool({ threads: 1, onLog: () => {} });
    try {
      const sab = await p.run(() => ((globalThis as { kept?: SharedArrayBuffer }).kept = new SharedArrayBuffer(8)));
      new Int32Array(sab)[0] = 9;
      assert.equal(await p.run(() => new Int32Array((globalThis as { kept?: SharedArrayBuffer }).kept!)[0]), 9);
    } finally {
      await p.close();
    }
  });

  const moves: { name: string; call(p: Executor, a: Float64Array): Promise<Float64Array> }[] = [
    { name: 'the transfer: true call option', call: (p, a) => p.call((x: Float64Array) => x, [a], { transfer: true }) },
    { name: 'a transfer list naming the view', call: (p, a) => p.call((x: Float64Array) => x, [a], { transfer: [a] }) },
    { name: 'a transfer list naming the buffer', call: (p, a) => p.call((x: Float64Array) => x, [a], { transfer: [a.buffer] }) },
    { name: 'an argument marked with transfer()', call: (p, a) => p.run((x: Float64Array) => x, transfer(a)) },
  ];
  for (const m of moves) {
    test(`an argument moves to the thread with ${m.name}: detached here, intact there`, async () => {
      const a = new Float64Array(1 << 17).fill(1.5);
      const back = await m.call(pool, a);
      assert.equal(a.byteLength, 0, 'the sent buffer is detached');
      assert.equal(back.length, 1 << 17);
      assert.equal(back[12345], 1.5);
    });
  }

  test('transfer() moves only the argument it marks: a large buffer in another argument is copied', async () => {
    const moved = new Float64Array(1 << 17).fill(1);
    const kept = new Float64Array(1 << 17).fill(2);
    const both = { data: new Float64Array(1 << 17).fill(3) };
    assert.equal(await pool.run((a: Float64Array, b: Float64Array, c: { data: Float64Array }) => a[0]! + b[0]! + c.data[0]!, transfer(moved), kept, both), 6);
    assert.equal(moved.byteLength, 0, 'the marked argument moved');
    assert.equal(kept.byteLength, 8 << 17, 'the unmarked one was copied');
    assert.equal(both.data.byteLength, 8 << 17);
    assert.equal(await pool.run((c: { data: Float64Array }) => c.data.length, transfer(both)), 1 << 17);
    assert.equal(both.data.byteLength, 0, 'a buffer reached from a marked object moves');
  });

  test('without transfer, arguments are copied (the sender keeps its buffer), and small buffers are copied even with transfer: true', async () => {
    const a = new Float64Array(1 << 17).fill(2);
    await pool.run((x: Float64Array) => x.length, a);
    assert.equal(a.byteLength, 8 << 17);
    const small = new Uint8Array(100).fill(3);
    const pooled = Buffer.from('a pooled buffer');
    assert.equal(await pool.call((s: Uint8Array, b: Buffer) => s[99]! + b.length, [small, pooled], { transfer: true }), 3 + pooled.length);
    assert.equal(small.byteLength, 100);
    assert.equal(pooled.toString(), 'a pooled buffer');
  });

  test('a result marked with transfer() moves back: detached in the thread', async () => {
    const p = createThreadPool({ threads: 1, onLog: () => {} });
    try {
      const got = await p.run(() => {
        const out = new Float64Array(1 << 17).fill(4);
        (globalThis as { sent?: Float64Array }).sent = out;
        return transfer(out);
      });
      assert.equal(got[100], 4);
      assert.equal(await p.run(() => (globalThis as { sent?: Float64Array }).sent!.byteLength), 0);
    } finally {
      await p.close();
    }
  });

  test('a detached buffer cannot be sent: a typed error at dumps names where it is', async () => {
    const a = new Float64Array(1 << 17);
    structuredClone(a.buffer, { transfer: [a.buffer] });
    await assert.rejects(pool.run((x: Float64Array) => x, a), (e: Error & { code?: string }) => e.code === 'ERR_MP_UNSUPPORTED_TYPE' && /detached/.test(e.message));
  });
});

describe('a failing thread fails only its own task and is replaced', () => {
  const rows: { name: string; run(p: Executor): Promise<unknown>; code: string; type: typeof WorkerError | typeof RemoteError; replaced: boolean }[] = [
    { name: 'a thrown error', run: (p) => p.run(() => { throw new TypeError('boom'); }), code: 'ERR_MP_REMOTE', type: RemoteError, replaced: false },
    { name: 'process.exit(3)', run: (p) => p.run(() => process.exit(3)), code: 'ERR_MP_WORKER_EXITED', type: WorkerError, replaced: true },
    { name: 'an exception thrown outside the task', run: (p) => p.run(() => new Promise(() => setTimeout(() => { throw new Error('late'); }, 1))), code: 'ERR_MP_WORKER_UNCAUGHT', type: WorkerError, replaced: true },
    { name: 'an infinite loop, ended by the call timeout', run: (p) => p.call(() => { for (;;); }, [], { timeout: 300 }), code: 'ERR_MP_TIMEOUT', type: WorkerError, replaced: true },
    { name: 'an infinite loop, ended by an abort', run: (p) => p.call(() => { for (;;); }, [], { signal: AbortSignal.timeout(300) }), code: 'ERR_MP_ABORTED', type: WorkerError, replaced: true },
    {
      name: 'a heap beyond resourceLimits',
      run: (p) => p.run(() => { const keep: number[][] = []; for (;;) keep.push(new Array(1e5).fill(1.5)); }),
      code: 'ERR_MP_WORKER_OUT_OF_MEMORY', type: WorkerError, replaced: true,
    },
  ];
  for (const row of rows) {
    test(row.name, async () => {
      const p = createThreadPool({ threads: 2, resourceLimits: { maxOldGenerationSizeMb: 48 }, onLog: () => {} });
      try {
        await p.ready();
        const before = p.workers().map((w) => w.id);
        // A slow neighbour on the other thread is not affected.
        const neighbour = p.run(async () => { await new Promise((r) => setTimeout(r, 400)); return 'neighbour done'; });
        const err = await row.run(p).then(() => assert.fail('should reject'), (e: unknown) => e as Error & { code: string });
        assert.ok(err instanceof row.type, `${err.constructor.name}: ${err.message}`);
        assert.equal(err.code, row.code, err.message);
        assert.equal(await neighbour, 'neighbour done');
        assert.equal(await p.run((x: number) => x + 1, 1), 2, 'the pool still works');
        const now = p.workers().map((w) => w.id);
        assert.equal(now.length, 2);
        assert.equal(now.some((id) => !before.includes(id)), row.replaced, `threads before ${before}, after ${now}`);
      } finally {
        await p.close();
      }
    });
  }

  test('process.exit reports its exit code', async () => {
    const p = createThreadPool({ threads: 1, onLog: () => {} });
    try {
      const err = (await p.run(() => process.exit(7)).catch((e: unknown) => e)) as WorkerError & { exitCode?: number };
      assert.equal(err.exitCode, 7);
      assert.equal(p.stats.workersCrashed, 1);
    } finally {
      await p.close();
    }
  });
});

describe('the pool around the threads', () => {
  test('console output is forwarded, tagged with the thread', async () => {
    logs.length = 0;
    await pool.run(() => {
      console.log('out from a thread');
      console.error('err from a thread');
    });
    await new Promise((r) => setImmediate(r));
    assert.ok(logs.some((l) => l.stream === 1 && l.text.includes('out from a thread') && /^t\d+$/.test(l.id)), JSON.stringify(logs));
    assert.ok(logs.some((l) => l.stream === 2 && l.text.includes('err from a thread')), JSON.stringify(logs));
  });

  test('close waits for running calls; calls after close reject with ERR_MP_CLOSED', async () => {
    const p = createThreadPool({ threads: 1, onLog: () => {} });
    const running = p.run(async () => { await new Promise((r) => setTimeout(r, 100)); return 'finished'; });
    await p.close();
    assert.equal(await running, 'finished');
    await assert.rejects(p.run(() => 1), (e: Error & { code?: string }) => e.code === 'ERR_MP_CLOSED');
  });

  test('close({ force: true }) ends a thread stuck in a loop and rejects its call with ERR_MP_CLOSED', async () => {
    const p = createThreadPool({ threads: 1, onLog: () => {} });
    await p.ready();
    const stuck = p.run(() => {
      for (;;);
    }).then(() => assert.fail('should reject'), (e: unknown) => e as Error & { code?: string });
    await new Promise((r) => setTimeout(r, 100));
    await p.close({ force: true });
    assert.equal((await stuck).code, 'ERR_MP_CLOSED');
    assert.deepEqual(p.workers(), []);
  });

  test('a thread whose heap grows past maxMemoryMiB is recycled after its task (its own heap, not the process)', async () => {
    const p = createThreadPool({ threads: 1, maxMemoryMiB: 64, onLog: () => {} });
    try {
      await p.ready();
      assert.equal(await p.run(() => 1), 1);
      assert.equal(p.stats.workersRecycled, 0, 'a small thread heap is below the bound, whatever the process holds');
      const before = p.workers()[0]!.id;
      await p.run(() => void ((globalThis as { big?: number[][] }).big = Array.from({ length: 100 }, () => new Array(1e5).fill(1.5))));
      assert.equal(p.stats.workersRecycled, 1);
      assert.equal(await p.run(() => (globalThis as { big?: unknown }).big === undefined), true, 'the next call runs on a fresh thread');
      assert.notEqual(p.workers()[0]!.id, before);
    } finally {
      await p.close();
    }
  });

  test('a thread ended by a timeout leaves no lease behind (its trees stay collectable)', async () => {
    const cacheDir = join(work, 'lease-cache');
    const p = createThreadPool({ threads: 1, cacheDir, onLog: () => {} });
    const leases = (): string[] => {
      const out: string[] = [];
      const ls = (d: string): string[] => (existsSync(d) ? readdirSync(d) : []);
      for (const ns of ls(join(cacheDir, 'ns'))) for (const id of ls(join(cacheDir, 'ns', ns, 'trees'))) out.push(...ls(join(cacheDir, 'ns', ns, 'trees', id, 'leases')));
      return out;
    };
    try {
      // A closure over a local module: the thread materializes a tree and leases it.
      const first = await p.run(async () => (typeof transfer === 'function' ? (await import('node:worker_threads')).threadId : -1));
      assert.ok(first > 0);
      const mine = (t: number) => leases().filter((l) => l.startsWith(`${process.pid}-t${t}-`));
      assert.equal(mine(first).length, 1, `leases: ${leases()}`);
      await p.call(() => { for (;;); }, [], { timeout: 200 }).catch(() => {});
      const second = await p.run(async () => (typeof transfer === 'function' ? (await import('node:worker_threads')).threadId : -1));
      assert.notEqual(second, first);
      assert.deepEqual(mine(first), [], 'the terminated thread\'s lease is gone');
      assert.equal(mine(second).length, 1);
    } finally {
      await p.close();
    }
    assert.deepEqual(leases(), [], 'closing the pool leaves no lease');
  });

  test('a forgotten pool does not keep the script alive', () => {
    const script = join(work, 'forgotten.mts');
    writeFileSync(script, `import { createThreadPool } from ${JSON.stringify(pathToFileURL(fileURLToPath(new URL('../src/index.ts', import.meta.url))).href)};\nconst p = createThreadPool({ threads: 2 });\nconsole.log(await p.run(() => 'ran'));\n`);
    const r = spawnSync(process.execPath, ['--import', 'tsx', script], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.signal, null, `killed after 30 s: the pool kept the script alive\n${r.stderr}`);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'ran');
  });

  test('threads share nothing with this thread but what they are sent: a global set there is not set here', async () => {
    await pool.run(() => void ((globalThis as { leaked?: number }).leaked = 1));
    assert.equal((globalThis as { leaked?: number }).leaked, undefined);
  });
});
