// The acceptance test with real pickled functions: a function from a temp project (TS and JS modules,
// JSON data, CJS and ESM modules, a workspace package, an installed package) is pickled and called by a `node`
// process whose cwd is elsewhere and which cannot read the project (a mount namespace, `unshare -m`, covers the
// project path with an empty tmpfs). Skipped until the function layer is registered (it lands on main
// separately); the ship/runtime side of the same scenario is covered by ship-e2e.test.ts and ship-section.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dumps } from '../src/index.ts';
import { makeProject, sharedNodeModules } from './fixtures/ship/make-project.ts';

const receiver = fileURLToPath(new URL('./fixtures/ship/fn-receiver.mjs', import.meta.url));
const canUnshare = spawnSync('unshare', ['-m', 'true']).status === 0;

test('a pickled function runs in a process that cannot read the project; after an edit the new payload runs new code and the old one old code', async () => {
  const project = makeProject();
  const work = mkdtempSync(join(tmpdir(), 'mp-fn-'));
  try {
    type Main = { run(x: number): Record<string, unknown> };
    const v1 = (await import(pathToFileURL(join(project, 'src/main.ts')).href)) as Main;
    // a closure over the module's exported function (by reference to the local module), not over its namespace
    const p1 = join(work, 'p1.bin');
    writeFileSync(p1, await dumps(((run: Main['run']) => (x: number) => run(x))(v1.run), { root: project, ship: { cacheDir: join(work, 'client') } }));
    // edit one module; load it under a new URL (a fresh module instance) and pickle again
    writeFileSync(join(project, 'src/util.ts'), readFileSync(join(project, 'src/util.ts'), 'utf8').replace('a + b', 'a * b'));
    const v2 = (await import(`${pathToFileURL(join(project, 'src/main.ts')).href}?v2`)) as Main;
    const p2 = join(work, 'p2.bin');
    writeFileSync(p2, await dumps(((run: Main['run']) => (x: number) => run(x))(v2.run), { root: project, ship: { cacheDir: join(work, 'client') } }));
    const job = JSON.stringify({ cacheDir: join(work, 'recv'), nodeModules: sharedNodeModules, project, payloads: [p1, p2], arg: 4 });
    const r = canUnshare
      ? spawnSync('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs none "$1" && shift && exec "$@"', 'sh', project, process.execPath, receiver, job], { cwd: work, encoding: 'utf8' })
      : spawnSync(process.execPath, [receiver, job], { cwd: work, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { projectEntries: unknown; results: { sum: number; greet: string; shared: string; twice: number; nodes: number }[]; again: { sum: number } };
    if (canUnshare) assert.deepEqual(out.projectEntries, []);
    assert.deepEqual(out.results[0], { sum: 7, twice: 8, greet: 'hello world', shared: 'shared-v1', nodes: 1, tags: ['legacy:radius'] });
    assert.equal(out.results[1]!.sum, 12);
    assert.equal(out.again.sum, 7);
  } finally {
    rmSync(project, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }
});
