// Closures that use local TypeScript modules, run by real workers whose cwd is outside the project: the code ships
// (only the blobs a worker lacks), an edit between calls moves one blob, and remote stacks map to local TS lines.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createPool, createStdioExecutor, createThreadPool, RemoteError, type Executor } from '../src/index.ts';

type Report = typeof import('./fixtures/executors/project/src/report.ts');
type Row = { id: number; value: number };

const fixture = fileURLToPath(new URL('./fixtures/executors/project/', import.meta.url));
const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
let project = '';
let elsewhere = '';
let report: Report;

before(async () => {
  project = realpathSync(mkdtempSync(join(tmpdir(), 'mp-exproj-')));
  elsewhere = realpathSync(mkdtempSync(join(tmpdir(), 'mp-excwd-')));
  cpSync(fixture, project, { recursive: true });
  report = (await import(join(project, 'src/report.ts'))) as Report;
});
after(() => {
  rmSync(project, { recursive: true, force: true });
  rmSync(elsewhere, { recursive: true, force: true });
});

const rows: Row[] = [
  { id: 1, value: 3 },
  { id: 2, value: 4 },
];

const executors: { name: string; make: () => Executor }[] = [
  {
    name: 'pool',
    make: () => createPool({ workers: 2, cwd: elsewhere, cacheDir: join(elsewhere, 'pool-cache'), dumpsOptions: { root: project }, onLog: () => {} }),
  },
  {
    name: 'stdio',
    make: () =>
      createStdioExecutor({
        command: [process.execPath, cli, 'worker', '--stdio', '--cache-dir', join(elsewhere, 'stdio-cache')],
        cwd: elsewhere,
        dumpsOptions: { root: project },
        onLog: () => {},
      }),
  },
  {
    // threads of this process; without `--import tsx` in their execArgv, they register tsx themselves
    name: 'threads',
    make: () => createThreadPool({ threads: 2, execArgv: [], cacheDir: join(elsewhere, 'threads-cache'), dumpsOptions: { root: project }, onLog: () => {} }),
  },
];

function setFactor(n: number): void {
  const file = join(project, 'src/math.ts');
  writeFileSync(file, readFileSync(file, 'utf8').replace(/factor: number = \d+/, `factor: number = ${n}`));
}

for (const { name, make } of executors) {
  test(`${name}: a closure over a local module runs in another folder; an edit moves one blob`, async () => {
    setFactor(2);
    const ex = make();
    try {
      const summarize = (r: Row[]) => report.summarize(r);
      assert.equal(await ex.run(summarize, rows), '2 rows, total 14');
      const build = ex.lastBuild!;
      assert.ok(build.manifest.entries.some((e) => e.path === 'src/report.ts'));
      const first = { ...ex.stats };
      assert.ok(first.blobsServed >= 3, `served ${first.blobsServed} blobs`);

      // Unchanged call: the function travels as its hash, no blobs move.
      assert.equal(await ex.run(summarize, rows), '2 rows, total 14');
      assert.equal(ex.stats.blobsServed, first.blobsServed);
      if (name === 'stdio') assert.equal(ex.stats.functionsSent, first.functionsSent);

      // A function pickled before the edit (wrap snapshots its code version once its pickling is done; one call
      // awaits that).
      const before = ex.wrap(summarize);
      assert.equal(await before(rows), '2 rows, total 14');

      // One-file edit: the new code runs, and exactly one blob (the edited file) moves to each worker that runs it.
      setFactor(10);
      assert.equal(await ex.run(summarize, rows), '2 rows, total 70');
      assert.notEqual(ex.lastBuild!.id, build.id);
      assert.equal(ex.stats.blobsServed, first.blobsServed + 1);
      assert.equal(ex.stats.blobBytesServed - first.blobBytesServed, readFileSync(join(project, 'src/math.ts')).length);

      // The old function keeps its version beside the new one, on the same workers.
      assert.equal(await before(rows), '2 rows, total 14');
      assert.equal(await ex.run(summarize, rows), '2 rows, total 70');

      // The worker never reads the project: its cwd is elsewhere (a thread shares this process's) and its code
      // comes from its cache.
      assert.equal(await ex.run(() => process.cwd()), name === 'threads' ? process.cwd() : elsewhere);
      const url = await ex.run(() => report.moduleUrl);
      assert.ok(url.includes(`${elsewhere}/`) && !url.includes(project), url);
    } finally {
      await ex.close();
    }
  });

  test(`${name}: a remote error inside a shipped module maps to the local TypeScript line`, async () => {
    const ex = make();
    try {
      const err = await ex.run((r: Row[]) => report.summarize(r), [{ id: 1, value: -1 }]).then(
        () => assert.fail('should reject'),
        (e: unknown) => e as RemoteError,
      );
      assert.ok(err instanceof RemoteError);
      assert.equal(err.remoteName, 'RangeError');
      assert.match(err.remoteStack, new RegExp(`at .*summarize \\(${project.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/src/report\\.ts:12:\\d+\\)`));
      assert.doesNotMatch(err.remoteStack, /trees[\\/]/);
    } finally {
      await ex.close();
    }
  });
}

test('a remote error in by-value code names this file', async () => {
  const ex = executors[0]!.make();
  try {
    const limit = 3;
    const err = await ex
      .run((x: number) => {
        if (x > limit) throw new Error(`too big: ${x}`);
        return x;
      }, 5)
      .then(
        () => assert.fail('should reject'),
        (e: unknown) => e as RemoteError,
      );
    // The function layer compiles by-value code with a sourceURL naming the defining file. The exact line and
    // column are kept only when it pads the code to its original position (not for columns past 2,000, which is
    // where tsx's one-line output puts most functions), so only the file is asserted here.
    assert.match(err.remoteStack, /\(file:\/\/\/.*executors-shipping\.test\.ts:\d+:\d+\)|executors-shipping\.test\.ts:\d+:\d+/);
  } finally {
    await ex.close();
  }
});

test('a worker is recycled after maxCodeVersions code versions, without failing calls', async () => {
  const ex = createPool({ workers: 1, cwd: elsewhere, cacheDir: join(elsewhere, 'recycle-cache'), dumpsOptions: { root: project }, maxCodeVersions: 2, onLog: () => {} });
  try {
    const results: string[] = [];
    for (const n of [2, 3, 4, 5]) {
      setFactor(n);
      results.push(await ex.run((r: Row[]) => report.summarize(r), rows));
    }
    assert.deepEqual(results, ['2 rows, total 14', '2 rows, total 21', '2 rows, total 28', '2 rows, total 35']);
    assert.ok(ex.stats.workersRecycled >= 1, `recycled ${ex.stats.workersRecycled}`);
    assert.equal(ex.stats.workersCrashed, 0);
  } finally {
    await ex.close();
  }
});

test('map over a local module with a pool', async () => {
  setFactor(2);
  const ex = executors[0]!.make();
  try {
    const out = await ex.map((v: number) => report.summarize([{ id: v, value: v }]), [1, 2, 3]).toArray();
    assert.deepEqual(out, ['1 rows, total 2', '1 rows, total 4', '1 rows, total 6']);
  } finally {
    await ex.close();
  }
});
