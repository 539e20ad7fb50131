// Call templates (issue 9, inline closures): `run(() => f(x))` in a loop makes a new closure per call; the executor
// pickles one template per source location, sends it once per worker, and sends each call's captures alone. Every
// row runs on real workers (pool processes, threads, `modulepickle worker --stdio` in a folder that cannot see this
// tree, a queue worker on a private Redis) and checks what a fresh pickle would give: each call's own captures,
// overlapping calls apart, by-reference captures swapped, data mutated in place, and an edit seen by the next call.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import { createPool, createQueueExecutor, createStdioExecutor, createThreadPool, dumps, RemoteError, type ExecutorSurface, type ExecutorStats } from '../src/index.ts';
import { FunctionCache, TaskKind, decodeOutcome, encodeTask, runTask, taskBody } from '../src/executors/task.ts';
import { concat, writeU32 } from '../src/executors/protocol.ts';
import { startRedis, type TestRedis } from './fixtures/queue/redis.ts';
import { startWorkerProc, type WorkerProc } from './fixtures/queue/procs.ts';

const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const KEY = 'templates-test-key-0123456789ab';
const quiet = { onLog: () => {} };

type Lib = { add(a: number, b: number): number; mul(a: number, b: number): number; version(i: number): string };
type Live = { current: (x: number) => string; swap(): void; reset(): void };
let work = '';
let project = '';
let lib: Lib;
let cjs: { twice(x: number): number };
let live: Live;
const libSource = (n: number): string =>
  `export function add(a, b) { return a + b; }\nexport function mul(a, b) { return a * b; }\nexport function version(i) { return '${n}:' + i; }\n`;

before(async () => {
  work = realpathSync(mkdtempSync(join(tmpdir(), 'mp-templates-')));
  project = join(work, 'project');
  mkdirSync(join(project, 'src'), { recursive: true });
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'templates-project', type: 'module', private: true }));
  writeFileSync(join(project, 'src', 'lib.mjs'), libSource(0));
  lib = (await import(pathToFileURL(join(project, 'src', 'lib.mjs')).href)) as Lib;
  writeFileSync(join(project, 'src', 'twice.cjs'), 'exports.twice = (x) => x * 2;\n');
  cjs = createRequire(import.meta.url)(join(project, 'src', 'twice.cjs')) as typeof cjs;
  writeFileSync(
    join(project, 'src', 'live.mjs'),
    "const a = function a(x) { return 'a' + x; };\nexport let current = a;\n" +
      "export function swap() { current = function b(x) { return 'b' + x; }; }\nexport function reset() { current = a; }\n",
  );
  live = (await import(pathToFileURL(join(project, 'src', 'live.mjs')).href)) as Live;
});
after(() => rmSync(work, { recursive: true, force: true }));

interface Setup {
  readonly ex: ExecutorSurface<ExecutorStats>;
  /** How many workers may each need the template once. */
  readonly workers: number;
  close(): Promise<void>;
}

const dumpsOptions = () => ({ root: project });
const executors: { name: string; make(): Promise<Setup> }[] = [
  {
    name: 'pool',
    async make() {
      const ex = createPool({ workers: 2, cacheDir: join(work, 'pool-cache'), dumpsOptions: dumpsOptions(), ...quiet });
      return { ex, workers: 2, close: () => ex.close() };
    },
  },
  {
    name: 'threads',
    async make() {
      const ex = createThreadPool({ threads: 2, cacheDir: join(work, 'threads-cache'), dumpsOptions: dumpsOptions(), ...quiet });
      return { ex, workers: 2, close: () => ex.close() };
    },
  },
  {
    name: 'stdio',
    async make() {
      const cwd = realpathSync(mkdtempSync(join(work, 'stdio-')));
      const ex = createStdioExecutor({ command: [process.execPath, cli, 'worker', '--stdio', '--cache-dir', join(cwd, 'cache')], cwd, workers: 2, dumpsOptions: dumpsOptions(), ...quiet });
      return { ex, workers: 2, close: () => ex.close() };
    },
  },
  {
    name: 'queue',
    async make() {
      const redis: TestRedis = await startRedis();
      const cwd = realpathSync(mkdtempSync(join(work, 'qworker-')));
      const worker: WorkerProc = await startWorkerProc([cli, 'worker', '--redis', redis.url, '--queue', 'tpl', '--concurrency', '2', '--cache', join(cwd, 'cache')], {
        cwd,
        env: { ...process.env, MODULEPICKLE_KEY: KEY },
        ready: /ready on queue/,
      });
      const ex = createQueueExecutor({ connection: redis.url, queue: 'tpl', key: KEY, dumpsOptions: dumpsOptions() });
      return {
        ex,
        // The queue client uploads each function once; its worker's local pool asks for it once per process.
        workers: 1,
        async close() {
          await ex.close();
          await worker.stop();
          await redis.stop();
        },
      };
    },
  },
];

let counter = 0;
// Helpers of this file (by value): settled ones belong to the template, the others are pickled with each call.
const factor = 3;
function scale(x: number): number {
  return x * factor;
}
let offset = 0;
function shifted(x: number): number {
  return x + offset;
}
function tagged(x: number): string {
  return `${(tagged as unknown as { tag?: string }).tag ?? ''}${x}`;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One row: what users write in a loop, and what must hold. */
const rows: { name: string; run(s: Setup): Promise<void> }[] = [
  {
    name: 'a closure over a local module: its template goes once to each worker, each call gets its own capture',
    async run({ ex, workers }) {
      const { add } = lib;
      await ex.run(() => add(0, 0));
      const sent = ex.stats.functionsSent;
      for (let i = 0; i < 30; i++) assert.equal(await ex.run(() => add(i, 1)), i + 1);
      assert.ok(ex.stats.functionsSent - sent <= workers, `templates sent: ${ex.stats.functionsSent - sent}`);
    },
  },
  {
    name: 'overlapping calls of one location each run in their own scope',
    async run({ ex }) {
      const { add } = lib;
      const got = await Promise.all(
        Array.from({ length: 24 }, (_, i) =>
          ex.run(async () => {
            await sleep((i * 7) % 5);
            return add(i, 0);
          }),
        ),
      );
      assert.deepEqual(got, Array.from({ length: 24 }, (_, i) => i));
    },
  },
  {
    name: 'a captured array mutated in place between calls travels with its current contents',
    async run({ ex }) {
      const items: number[] = [];
      for (let i = 1; i <= 5; i++) {
        items.push(i);
        assert.deepEqual(await ex.run(() => items.reduce((a, b) => a + b, 0)), (i * (i + 1)) / 2);
      }
    },
  },
  {
    name: 'a module-level `let` that changes between calls travels with its new value',
    async run({ ex }) {
      for (let i = 0; i < 4; i++) {
        counter = i * 10;
        assert.equal(await ex.run(() => counter + 1), i * 10 + 1);
      }
    },
  },
  {
    name: 'a by-reference capture swapped for another export takes a new template',
    async run({ ex }) {
      let op = lib.add;
      assert.equal(await ex.run(() => op(2, 3)), 5);
      op = lib.mul;
      assert.equal(await ex.run(() => op(2, 3)), 6);
      op = lib.add;
      assert.equal(await ex.run(() => op(2, 3)), 5);
    },
  },
  {
    name: 'a helper function of the program (by value, settled) is part of the template',
    async run({ ex, workers }) {
      await ex.run(() => scale(0));
      const sent = ex.stats.functionsSent;
      for (let i = 0; i < 10; i++) assert.equal(await ex.run(() => scale(i)), i * 3);
      assert.ok(ex.stats.functionsSent - sent <= workers, `templates sent: ${ex.stats.functionsSent - sent}`);
    },
  },
  {
    name: 'a helper that reads a reassigned binding, or whose own properties change, travels with its current state',
    async run({ ex }) {
      for (let i = 0; i < 4; i++) {
        offset = i * 100;
        assert.equal(await ex.run(() => shifted(i)), i * 100 + i);
        (tagged as unknown as { tag?: string }).tag = `t${i}:`;
        assert.equal(await ex.run(() => tagged(i)), `t${i}:${i}`);
      }
    },
  },
  {
    name: 'a capture that is a function by value, or data holding one, is pickled whole and still right',
    async run({ ex }) {
      const triple = (x: number) => x * 3;
      const holder = { f: triple };
      for (let i = 0; i < 3; i++) {
        assert.equal(await ex.run(() => triple(i)), i * 3);
        assert.equal(await ex.run(() => holder.f(i + 1)), (i + 1) * 3);
      }
    },
  },
  {
    name: 'an exception in a closure made from a template names this file in its remote stack',
    async run({ ex }) {
      for (const x of [4, 5]) {
        const err = await ex
          .run(() => {
            if (x > 3) throw new Error(`too big: ${x}`);
            return x;
          })
          .then(
            () => assert.fail('should reject'),
            (e: unknown) => e as RemoteError,
          );
        assert.match(err.message, new RegExp(`too big: ${x}`));
        assert.match(err.remoteStack, /executors-templates\.test\.ts:\d+:\d+/);
      }
    },
  },
  {
    name: 'an export passed as the function (ES module, CommonJS) is pickled once while its code is unchanged',
    async run({ ex, workers }) {
      assert.equal(await ex.run(lib.add, 1, 2), 3);
      assert.equal(await ex.run(cjs.twice, 4), 8);
      const sent = ex.stats.functionsSent;
      for (let i = 0; i < 10; i++) {
        assert.equal(await ex.run(lib.add, i, 2), i + 2);
        assert.equal(await ex.run(cjs.twice, i), i * 2);
      }
      assert.ok(ex.stats.functionsSent - sent <= 2 * workers, `functions sent: ${ex.stats.functionsSent - sent}`);
    },
  },
  {
    name: 'an `export let` reassigned after a call: the old function travels by value, the binding names the new one',
    async run({ ex }) {
      live.reset();
      const first = live.current;
      assert.equal(await ex.run(first, 1), 'a1');
      live.swap();
      assert.equal(await ex.run(first, 2), 'a2');
      assert.equal(await ex.run(live.current, 3), 'b3');
    },
  },
  {
    name: 'edit the module of an export passed as the function and call at once: every call sees its edit',
    async run({ ex }) {
      const file = join(project, 'src', 'lib.mjs');
      for (let n = 1; n <= 10; n++) {
        writeFileSync(file, libSource(n));
        assert.equal(await ex.run(lib.version, n), `${n}:${n}`, `round ${n}`);
      }
      writeFileSync(file, libSource(0));
      assert.equal(await ex.run(lib.version, 7), '0:7');
    },
  },
  {
    name: 'edit the local module and call at once, 20 rounds: every call sees its edit',
    async run({ ex }) {
      const { version } = lib;
      const file = join(project, 'src', 'lib.mjs');
      for (let n = 1; n <= 20; n++) {
        writeFileSync(file, libSource(n));
        assert.equal(await ex.run(() => version(n)), `${n}:${n}`, `round ${n}`);
      }
      writeFileSync(file, libSource(0));
      assert.equal(await ex.run(() => version(7)), '0:7');
    },
  },
];

for (const { name, make } of executors) {
  describe(`call templates on the ${name} executor`, { timeout: 120_000 }, () => {
    let setup: Setup;
    before(async () => {
      setup = await make();
    });
    after(() => setup?.close());
    for (const row of rows) test(row.name, () => row.run(setup));
  });
}

describe('call templates: the task bytes', () => {
  const options = () => ({ root: project, ship: { blobs: 'none' as const } });

  test('the same captures give the same bytes; a changed capture changes the captures alone', async () => {
    const opts = options();
    const { add } = lib;
    const task = (x: number) => encodeTask(() => add(x, 1), [], { dumpsOptions: opts });
    const [a, b, c] = [await task(1), await task(1), await task(2)];
    assert.equal(a.kind, TaskKind.template);
    assert.equal(a.fnKey, b.fnKey);
    assert.deepEqual(a.argsBytes, b.argsBytes);
    assert.equal(a.fnKey, c.fnKey, 'one template for the location');
    assert.notDeepEqual(a.argsBytes, c.argsBytes);
  });

  test('a template runs as a fresh pickle of the closure would', async () => {
    const opts = options();
    const { add } = lib;
    const cache = new FunctionCache();
    for (const x of [3, 4]) {
      const t = await encodeTask(() => add(x, 10), [], { dumpsOptions: opts });
      const out = await runTask(taskBody(t, true), { cache, cacheDir: join(work, 'run-cache') });
      assert.equal(await decodeOutcome(out.status, out.payload), x + 10);
    }
  });

  test('each call gets scopes of its own: code the call leaves behind keeps that call\'s captures', async () => {
    const opts = options();
    const cache = new FunctionCache();
    const g = globalThis as unknown as Record<string, () => number>;
    for (const i of [1, 2, 3]) {
      const t = await encodeTask(() => void (g[`__templateRead${i}`] = () => i), [], { dumpsOptions: opts });
      const out = await runTask(taskBody(t, true), { cache });
      await decodeOutcome(out.status, out.payload);
    }
    assert.deepEqual([1, 2, 3].map((i) => g[`__templateRead${i}`]!()), [1, 2, 3]);
    assert.equal(cache.decodes, 1, 'one template decoded');
  });

  const u32 = (n: number) => {
    const b = new Uint8Array(4);
    writeU32(b, 0, n);
    return b;
  };
  const hostile: { name: string; captures: () => Promise<Uint8Array>; code: string }[] = [
    { name: 'captures that carry code are refused', captures: () => dumps({ x: () => 1 }), code: 'ERR_MP_CODE_REFUSED' },
    { name: 'a capture the template does not declare is refused', captures: () => dumps({ notDeclared: 1 }), code: 'ERR_MP_BAD_FUNCTION' },
    { name: 'captures that are not a record are refused', captures: () => dumps([1, 2]), code: 'ERR_MP_BAD_FUNCTION' },
    { name: 'a truncated captures length is refused', captures: async () => new Uint8Array(0), code: 'ERR_MP_PROTOCOL_GARBAGE' },
  ];
  for (const h of hostile) {
    test(`bad input: ${h.name}`, async () => {
      const { add } = lib;
      const x = 1;
      const t = await encodeTask(() => add(x, 1), [], { dumpsOptions: options() });
      const caps = await h.captures();
      const argsBytes = caps.length ? concat(u32(caps.length), caps, await dumps([])) : u32(1 << 20);
      const out = await runTask(taskBody({ ...t, kind: TaskKind.template, argsBytes }, true), { cache: new FunctionCache(), cacheDir: join(work, 'run-cache') });
      const err = await decodeOutcome(out.status, out.payload).then(() => assert.fail('should fail'), (e: unknown) => e);
      assert.ok(err instanceof RemoteError);
      assert.equal(err.code, h.code);
    });
  }

  test('bad input: a template that is not a by-value function is refused', async () => {
    const t = await encodeTask(lib.add, [], { dumpsOptions: options() });
    const caps = await dumps({ a: 1 });
    const out = await runTask(taskBody({ ...t, kind: TaskKind.template, argsBytes: concat(u32(caps.length), caps, await dumps([])) }, true), { cache: new FunctionCache() });
    const err = await decodeOutcome(out.status, out.payload).then(() => assert.fail('should fail'), (e: unknown) => e);
    assert.ok(err instanceof RemoteError);
    assert.equal(err.code, 'ERR_MP_BAD_FUNCTION');
  });
});
