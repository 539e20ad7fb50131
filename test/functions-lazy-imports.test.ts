/* A relative `require()` or `import()` inside by-value code resolves against the shipped copy of the module that
 * defined the function. Two real receivers: a stdio worker in a mount namespace where the project folder is an empty
 * tmpfs (it cannot read the project at all; needs `unshare -m`), and a process pool worker with its cwd elsewhere,
 * where every module the closure loads must be a file of the receiver's shipped tree, never the sender's file. (Node's
 * permission model cannot hide the project from pool workers: it forbids the node_modules symlink a receiver's tree
 * needs, and the pool has no command wrapper.) */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { createPool, createStdioExecutor, type Executor } from '../src/index.ts';

const fixture = fileURLToPath(new URL('./fixtures/functions/lazy-project/', import.meta.url));
const repo = resolve('.');
const cli = join(repo, 'dist/cli/main.js');
const canUnshare = spawnSync('unshare', ['-m', 'true']).status === 0;

type Task = (n: number) => unknown;
let project = '';
let elsewhere = '';
let cjsTask: (offset: number) => Task;
let esmTask: (offset: number) => Task;

before(async () => {
  project = realpathSync(mkdtempSync(join(tmpdir(), 'mp-lazy-')));
  elsewhere = realpathSync(mkdtempSync(join(tmpdir(), 'mp-lazy-cwd-')));
  cpSync(fixture, project, { recursive: true });
  cjsTask = (createRequire(join(project, 'x.js'))('./src/jobs/task.cjs') as { makeTask: typeof cjsTask }).makeTask;
  esmTask = ((await import(pathToFileURL(join(project, 'src/jobs/task.mjs')).href)) as { makeTask: typeof esmTask }).makeTask;
});
after(() => {
  rmSync(project, { recursive: true, force: true });
  rmSync(elsewhere, { recursive: true, force: true });
});

const executors: { name: string; skip?: string; hidden?: boolean; make: (cache: string) => Executor }[] = [
  {
    name: 'process pool worker (cwd elsewhere)',
    make: (cache) => createPool({ workers: 1, cwd: elsewhere, cacheDir: cache, dumpsOptions: { root: project }, onLog: () => {} }),
  },
  {
    name: 'stdio worker whose view of the project is an empty tmpfs',
    hidden: true,
    ...(canUnshare ? {} : { skip: 'unshare -m is not permitted here' }),
    make: (cache) =>
      createStdioExecutor({
        command: ['unshare', '-m', 'sh', '-c', 'mount -t tmpfs none "$1" && shift && exec "$@"', 'sh', project, process.execPath, cli, 'worker', '--stdio', '--cache-dir', cache],
        cwd: elsewhere,
        dumpsOptions: { root: project },
        onLog: () => {},
      }),
  },
];

const underCache = (cache: string, files: unknown): void => {
  for (const f of files as string[]) {
    const path = f.startsWith('file:') ? fileURLToPath(f) : f;
    assert.ok(path.startsWith(cache + '/'), `${path} is not in the receiver's shipped tree under ${cache}`);
    assert.ok(!path.startsWith(project + '/'), `${path} is the sender's file`);
  }
};

for (const ex of executors) {
  describe(ex.name, { skip: ex.skip }, () => {
    let executor: Executor;
    let cache = '';
    before(() => {
      cache = realpathSync(mkdtempSync(join(elsewhere, 'cache-')));
      executor = ex.make(cache);
    });
    after(async () => {
      await executor?.close();
    });

    if (ex.hidden) it('the worker cannot read the project', async () => {
      const probe = (p: string): string => {
        try {
          process.getBuiltinModule('fs').readdirSync(p);
          return 'visible';
        } catch (e) {
          return (e as { code?: string }).code ?? 'error';
        }
      };
      const seen = await executor.run(probe, join(project, 'src'));
      assert.notEqual(seen, 'visible');
    });

    it("require('./x.cjs') and require('../shared/x.cjs') in a by-value closure load the shipped copies", async () => {
      const out = (await executor.run(cjsTask(1), 5)) as { value: number; tag: string; files: string[] };
      assert.deepEqual([out.value, out.tag], [11, 'up-v1']);
      underCache(cache, out.files);
    });

    it("await import('./x.mjs'), import('../shared/x.mjs') and import.meta in a by-value closure use the shipped copies", async () => {
      const out = (await executor.run(esmTask(2), 5)) as { value: number; tag: string; same: boolean; files: string[] };
      assert.deepEqual([out.value, out.tag, out.same], [17, 'up-esm-v1', true]);
      underCache(cache, out.files);
    });
  });
}
