// `map` on every executor: awaited it gives the results array in input order; iterated with `for await` it
// streams; an item's exception rejects the awaited form and throws from the iteration, with the item's index.
// Real workers: pool processes, `modulepickle worker --stdio` processes, and a queue worker on a private Redis.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createPool, createQueueExecutor, createStdioExecutor, createThreadPool, RemoteError, type ExecutorSurface } from '../src/index.ts';
import { startRedis, type TestRedis } from './fixtures/queue/redis.ts';
import { startWorkerProc, type WorkerProc } from './fixtures/queue/procs.ts';

const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const KEY = 'map-test-key-0123456789abcdef';
const quiet = { onLog: () => {} };

interface Setup {
  readonly ex: ExecutorSurface<unknown>;
  close(): Promise<void>;
}

let work = '';
before(() => {
  work = realpathSync(mkdtempSync(join(tmpdir(), 'mp-map-')));
});
after(() => rmSync(work, { recursive: true, force: true }));

const executors: { name: string; make(): Promise<Setup> }[] = [
  {
    name: 'pool',
    async make() {
      const ex = createPool({ workers: 2, ...quiet });
      return { ex, close: () => ex.close() };
    },
  },
  {
    name: 'threads',
    async make() {
      const ex = createThreadPool({ threads: 2, ...quiet });
      return { ex, close: () => ex.close() };
    },
  },
  {
    name: 'stdio',
    async make() {
      const ex = createStdioExecutor({ command: [process.execPath, cli, 'worker', '--stdio'], cwd: work, workers: 2, ...quiet });
      return { ex, close: () => ex.close() };
    },
  },
  {
    name: 'queue',
    async make() {
      const redis: TestRedis = await startRedis();
      const cwd = realpathSync(mkdtempSync(join(work, 'qworker-')));
      const worker: WorkerProc = await startWorkerProc([cli, 'worker', '--redis', redis.url, '--queue', 'map', '--concurrency', '2', '--cache', join(cwd, 'cache')], {
        cwd,
        env: { ...process.env, MODULEPICKLE_KEY: KEY },
        ready: /ready on queue/,
      });
      const ex = createQueueExecutor({ connection: redis.url, queue: 'map', key: KEY });
      return {
        ex,
        async close() {
          await ex.close();
          await worker.stop();
          await redis.stop();
        },
      };
    },
  },
];

for (const { name, make } of executors) {
  describe(`map on the ${name} executor`, { timeout: 60_000 }, () => {
    let setup: Setup;
    before(async () => {
      setup = await make();
    });
    after(() => setup?.close());

    test('await map(...) gives the results array in input order', async () => {
      const items = Array.from({ length: 1000 }, (_, i) => i);
      const out: number[] = await setup.ex.map((x: number) => x * 3, items);
      assert.ok(Array.isArray(out));
      assert.deepEqual(out, items.map((i) => i * 3));
      assert.deepEqual(await setup.ex.map((x: number) => x, []), []);
    });

    test('for await streams the results in order, from an async iterable too', async () => {
      async function* gen() {
        for (let i = 0; i < 50; i++) yield i;
      }
      const seen: number[] = [];
      for await (const v of setup.ex.map(async (x: number) => x + 1, gen(), { chunkSize: 4, concurrency: 3 })) seen.push(v);
      assert.deepEqual(seen, Array.from({ length: 50 }, (_, i) => i + 1));
    });

    test('an item error rejects the awaited form, with the item index', async () => {
      const failing = (x: number) => {
        if (x === 13) throw new Error('unlucky');
        return x;
      };
      await assert.rejects(
        async () => await setup.ex.map(failing, Array.from({ length: 40 }, (_, i) => i), { chunkSize: 5 }),
        (e: unknown) => e instanceof RemoteError && /unlucky/.test(e.message) && (e as RemoteError & { index: number }).index === 13,
      );
      await assert.rejects(
        setup.ex.map(failing, [13]).then((r: number[]) => r),
        (e: unknown) => e instanceof RemoteError,
      );
    });

    test('an item error throws from the iteration after the results before it', async () => {
      const seen: number[] = [];
      await assert.rejects(
        async () => {
          for await (const v of setup.ex.map((x: number) => {
            if (x === 7) throw new RangeError('seven');
            return x;
          }, Array.from({ length: 20 }, (_, i) => i), { chunkSize: 1 })) seen.push(v);
        },
        (e: unknown) => e instanceof RemoteError && e.remoteName === 'RangeError' && (e as RemoteError & { index: number }).index === 7,
      );
      assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6]);
    });

    test('awaiting the same map twice runs it once', async () => {
      const m = setup.ex.map((x: number) => x * 2, [1, 2, 3]);
      const [a, b] = await Promise.all([m, m.toArray()]);
      assert.deepEqual(a, [2, 4, 6]);
      assert.equal(a, b);
    });
  });
}
