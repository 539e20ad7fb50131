// The watched tree (issue 9, tree checks): an unchanged call costs no walk, and no call ever ships a stale tree.
// Each change is made and the build taken at once (no sleep); the full check (`buildManifest`, a fresh walk and a
// stat per file) is the oracle: the watched build must have the same version id, every time. Then the same through a
// real process pool, 60 edit-and-call rounds, and the fallback (one warning) in a fresh process.
// Needs the dist/ build (`npm run build`) for the pool workers.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildManifest, createPool, dumps, dumpsSync, sha256Hex, type Executor } from '../src/index.ts';
import { closeTreeWatches, treeWatches, watchedBuild } from '../src/ship/tree-watch.ts';
import { ensureCacheDir } from '../src/runtime/cache-dir.ts';
import { TreeWalker } from '../src/ship/walk.ts';

const repo = fileURLToPath(new URL('..', import.meta.url));
let work = '';
before(() => {
  work = realpathSync(mkdtempSync(join(tmpdir(), 'mp-tree-watch-')));
});
after(() => {
  closeTreeWatches();
  rmSync(work, { recursive: true, force: true });
});

function makeProject(dir: string, files = 200): void {
  mkdirSync(join(dir, 'src', 'gen'), { recursive: true });
  mkdirSync(join(dir, 'node_modules'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'watched', private: true, type: 'module' }));
  writeFileSync(join(dir, '.gitignore'), 'dist/\n*.log\n');
  writeFileSync(join(dir, 'src', 'v.mjs'), 'export function v() {\n  return 0;\n}\n');
  for (let i = 0; i < files; i++) {
    const sub = join(dir, 'src', 'gen', `d${i % 10}`);
    mkdirSync(sub, { recursive: true });
    writeFileSync(join(sub, `f${i}.mjs`), `export const f${i} = ${i};\n`);
  }
}

const write = (file: string, text: string): void => {
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, text);
};

/** Each step changes the tree; `changes` says whether the version must change. */
const steps: { name: string; run: (p: string) => void; changes: boolean; has?: string[]; hasNot?: string[] }[] = [
  { name: 'nothing changed', run: () => {}, changes: false },
  { name: 'a file edited', run: (p) => write(join(p, 'src/v.mjs'), 'export function v() {\n  return 1;\n}\n'), changes: true },
  { name: 'the same file edited again at once, same size', run: (p) => write(join(p, 'src/v.mjs'), 'export function v() {\n  return 2;\n}\n'), changes: true },
  { name: 'a file added', run: (p) => write(join(p, 'src/added.mjs'), 'export const a = 1;\n'), changes: true, has: ['src/added.mjs'] },
  { name: 'a file removed', run: (p) => unlinkSync(join(p, 'src/added.mjs')), changes: true, hasNot: ['src/added.mjs'] },
  { name: 'a file renamed', run: (p) => renameSync(join(p, 'src/gen/d1/f1.mjs'), join(p, 'src/gen/d1/g1.mjs')), changes: true, has: ['src/gen/d1/g1.mjs'], hasNot: ['src/gen/d1/f1.mjs'] },
  {
    name: 'an atomic save (write a temp file, rename it over)',
    run: (p) => (writeFileSync(join(p, 'src/.v.tmp'), 'export function v() {\n  return 3;\n}\n'), renameSync(join(p, 'src/.v.tmp'), join(p, 'src/v.mjs'))),
    changes: true,
  },
  { name: 'a folder created, then a file in it at once', run: (p) => (mkdirSync(join(p, 'src/new')), writeFileSync(join(p, 'src/new/n.mjs'), '1')), changes: true, has: ['src/new/n.mjs'] },
  { name: 'nested folders created at once', run: (p) => write(join(p, 'src/deep/a/b/c/x.mjs'), 'x'), changes: true, has: ['src/deep/a/b/c/x.mjs'] },
  { name: 'a file in a new folder edited at once', run: (p) => write(join(p, 'src/deep/a/b/c/x.mjs'), 'y'), changes: true },
  { name: 'a folder renamed', run: (p) => renameSync(join(p, 'src/gen/d2'), join(p, 'src/gen/e2')), changes: true, has: ['src/gen/e2/f2.mjs'], hasNot: ['src/gen/d2/f2.mjs'] },
  { name: 'a file in the renamed folder edited', run: (p) => write(join(p, 'src/gen/e2/f2.mjs'), 'changed'), changes: true },
  { name: 'a folder removed', run: (p) => rmSync(join(p, 'src/deep'), { recursive: true }), changes: true, hasNot: ['src/deep/a/b/c/x.mjs'] },
  { name: '.gitignore edited to ignore a folder', run: (p) => write(join(p, '.gitignore'), 'dist/\n*.log\nsrc/gen/d3/\n'), changes: true, hasNot: ['src/gen/d3/f3.mjs'] },
  { name: 'a file in the ignored folder edited', run: (p) => write(join(p, 'src/gen/d3/f3.mjs'), 'ignored edit'), changes: false },
  { name: '.gitignore edited back', run: (p) => write(join(p, '.gitignore'), 'dist/\n*.log\n'), changes: true, has: ['src/gen/d3/f3.mjs'] },
  { name: 'a nested .modulepickleignore', run: (p) => write(join(p, 'src/gen/.modulepickleignore'), 'd4/\n'), changes: true, hasNot: ['src/gen/d4/f4.mjs'] },
  { name: 'an ignored file written', run: (p) => write(join(p, 'debug.log'), 'log'), changes: false },
  { name: 'the exec bit set', run: (p) => chmodSync(join(p, 'src/gen/d5/f5.mjs'), 0o755), changes: true },
  { name: 'a symlink created', run: (p) => symlinkSync('v.mjs', join(p, 'src/link.mjs')), changes: true, has: ['src/link.mjs'] },
  { name: 'the symlink retargeted', run: (p) => (unlinkSync(join(p, 'src/link.mjs')), symlinkSync('gen/d5/f5.mjs', join(p, 'src/link.mjs'))), changes: true },
  { name: 'a file replaced by a folder', run: (p) => (unlinkSync(join(p, 'src/gen/d6/f6.mjs')), write(join(p, 'src/gen/d6/f6.mjs/inner.mjs'), 'i')), changes: true, has: ['src/gen/d6/f6.mjs/inner.mjs'] },
  { name: 'a cache folder created in the project (tagged)', run: (p) => (ensureCacheDir(join(p, 'var/c')), write(join(p, 'var/c/blob'), 'b')), changes: false, hasNot: ['var/c/blob', 'var/c/CACHEDIR.TAG'] },
  { name: 'package.json edited', run: (p) => write(join(p, 'package.json'), JSON.stringify({ name: 'watched', private: true, type: 'module', version: '2.0.0' })), changes: true },
  { name: 'a burst of 5,000 new files', run: (p) => { for (let i = 0; i < 5000; i++) write(join(p, 'src/burst', `b${i}.mjs`), String(i)); }, changes: true, has: ['src/burst/b4999.mjs'] },
  { name: 'the burst removed', run: (p) => rmSync(join(p, 'src/burst'), { recursive: true }), changes: true, hasNot: ['src/burst/b0.mjs'] },
];

describe('the watched build always equals the full check', () => {
  const project = (): string => join(work, 'steps');
  const opts = (): { root: string; cacheDir: string } => ({ root: project(), cacheDir: join(work, 'steps-cache') });
  before(async () => {
    makeProject(project());
    await watchedBuild(opts());
  });

  let last = '';
  for (const step of steps) {
    test(step.name, async () => {
      step.run(project());
      const watched = await watchedBuild(opts());
      assert.ok(treeWatches().some((w) => w.root === project()), 'the tree is watched (not the fallback)');
      const full = buildManifest(opts());
      assert.deepEqual(watched.manifest.entries.map((e) => e.path), full.manifest.entries.map((e) => e.path));
      assert.equal(watched.id, full.id, 'same version as the full check');
      if (last) assert.equal(watched.id !== last, step.changes, step.changes ? 'the version changed' : 'the version stayed');
      const paths = new Set(watched.manifest.entries.map((e) => e.path));
      for (const p of step.has ?? []) assert.ok(paths.has(p), `${p} ships`);
      for (const p of step.hasNot ?? []) assert.ok(!paths.has(p), `${p} does not ship`);
      last = watched.id;
    });
  }

  test('two same-size writes within one timestamp tick, a build between them: the second is seen (200 rounds)', async () => {
    const file = join(project(), 'src', 'tick.mjs');
    let wrong = 0;
    for (let i = 0; i < 200; i++) {
      writeFileSync(file, `export const t = 'a${String(i).padStart(3, '0')}';\n`);
      await watchedBuild(opts());
      writeFileSync(file, `export const t = 'b${String(i).padStart(3, '0')}';\n`);
      const watched = await watchedBuild(opts());
      const entry = watched.manifest.entries.find((e) => e.path === 'src/tick.mjs');
      if (entry?.kind !== 'file' || entry.hash !== sha256Hex(readFileSync(file))) wrong++;
    }
    assert.equal(wrong, 0, `${wrong} of 200 builds shipped the first write`);
  });

  test('an event on a file whose stat looks unchanged still re-checks it (kernels with coarse timestamps)', () => {
    // This kernel may stamp every write apart; older ones give two writes in one tick the same stat. The walker must
    // report a file named by an event as changed anyway, so the stat cache's racy-clean rule decides.
    const walker = new TreeWalker(project());
    walker.scan();
    walker.takeChanged();
    walker.refresh(join(project(), 'src'), new Set(['v.mjs']));
    assert.deepEqual([...walker.takeChanged()], ['src/v.mjs']);
    walker.refresh(join(project(), 'src'), new Set());
    assert.deepEqual([...walker.takeChanged()], []);
  });

  test('an unchanged tree reuses the same build object (no walk, no rehash, no new text)', async () => {
    const a = await watchedBuild(opts());
    const b = await watchedBuild(opts());
    assert.equal(a, b);
  });

  test('an ignored loaded module (extra file) edited at once is seen', async () => {
    const loaded = join(project(), 'dist', 'loaded.js');
    write(loaded, 'one');
    const o = { ...opts(), extraFiles: [loaded] };
    const first = await watchedBuild(o);
    assert.ok(first.manifest.entries.some((e) => e.path === 'dist/loaded.js'));
    write(loaded, 'two');
    const second = await watchedBuild(o);
    assert.notEqual(second.id, first.id);
    assert.equal(second.id, buildManifest(o).id);
  });

  test('dumpsSync keeps the full check (it cannot wait for events) and agrees with dumps', async () => {
    const { v } = (await import(join(project(), 'src', 'v.mjs'))) as { v: () => number };
    write(join(project(), 'src/v.mjs'), 'export function v() {\n  return 42;\n}\n');
    const ids = new Set<string>();
    const onBuild = (b: { id: string }): void => void ids.add(b.id);
    await dumps(() => v(), { ...opts(), ship: { blobs: 'none', onBuild } });
    dumpsSync(() => v(), { ...opts(), ship: { blobs: 'none', onBuild } });
    assert.equal(ids.size, 1, 'the same version either way');
  });
});

describe('through a real pool: edit, call at once, 60 rounds', { timeout: 120_000 }, () => {
  const project = (): string => join(work, 'pool');
  let pool: Executor;
  before(() => {
    makeProject(project(), 2000);
    write(join(project(), 'src/data/.keep'), '');
    pool = createPool({ workers: 1, cacheDir: join(work, 'pool-cache'), onLog: () => {}, dumpsOptions: { root: project() } });
  });
  after(() => pool.close({ force: true }));

  test('every call sees its edit: module source, data files added, removed, renamed, new folders', async () => {
    const v = join(project(), 'src', 'v.mjs');
    const source = (n: number): string =>
      `import { readdirSync } from 'node:fs';\nexport function v() {\n  const d = new URL('./data/', import.meta.url);\n` +
      `  return { n: ${n}, data: readdirSync(d, { recursive: true }).map(String).sort() };\n}\n`;
    writeFileSync(v, source(0));
    const { v: current } = (await import(v)) as { v: () => { n: number; data: string[] } };
    const data = new Set<string>(['.keep']);
    let n = 0;
    let stale = 0;
    const ids = new Set<string>();
    for (let round = 1; round <= 60; round++) {
      const dir = join(project(), 'src', 'data');
      switch (round % 4) {
        case 0:
          writeFileSync(v, source((n = round)));
          break;
        case 1:
          writeFileSync(join(dir, `r${round}.json`), String(round));
          data.add(`r${round}.json`);
          break;
        case 2: {
          const old = [...data].find((f) => f.startsWith('r') && !f.includes('/'));
          if (old) (renameSync(join(dir, old), join(dir, `m${round}.json`)), data.delete(old), data.add(`m${round}.json`));
          break;
        }
        case 3:
          mkdirSync(join(dir, `s${round}`));
          writeFileSync(join(dir, `s${round}`, 'x.json'), '1');
          data.add(`s${round}`).add(`s${round}/x.json`);
          if (round > 10) {
            const gone = `m${round - 9}.json`;
            if (data.delete(gone)) unlinkSync(join(dir, gone));
          }
          break;
      }
      const got = await pool.run(() => current());
      if (got.n !== n || JSON.stringify(got.data) !== JSON.stringify([...data].sort())) stale++;
      assert.deepEqual(got, { n, data: [...data].sort() }, `round ${round}`);
      ids.add(pool.lastBuild!.id);
    }
    assert.equal(stale, 0);
    assert.equal(ids.size, 60, 'a new version per round');
    assert.ok(treeWatches().some((w) => w.root === project()), 'the tree is watched');
    const before = pool.lastBuild!;
    assert.deepEqual(await pool.run(() => current()), { n, data: [...data].sort() });
    assert.equal(pool.lastBuild, before, 'an unchanged call reuses the build');
  });

  test('closing the last executor closes the watches', async () => {
    assert.ok(treeWatches().length > 0);
    await pool.close();
    assert.deepEqual(treeWatches(), []);
  });
});

test('the fallback: over the watch limit, every call does the full check, and one warning says why', () => {
  const project = join(work, 'fallback');
  makeProject(project, 50);
  const script = `
    import { writeFileSync } from 'node:fs';
    import { pathToFileURL } from 'node:url';
    const { dumps } = await import(pathToFileURL(${JSON.stringify(join(repo, 'src/index.ts'))}).href);
    const { buildManifest } = await import(pathToFileURL(${JSON.stringify(join(repo, 'src/ship/build.ts'))}).href);
    const warnings = [];
    process.on('warning', (w) => warnings.push({ code: w.code, message: w.message }));
    const file = ${JSON.stringify(join(project, 'src/v.mjs'))};
    const { v } = await import(pathToFileURL(file).href);
    const opts = { root: ${JSON.stringify(project)}, cacheDir: ${JSON.stringify(join(work, 'fallback-cache'))} };
    let same = 0;
    for (let i = 0; i < 5; i++) {
      writeFileSync(file, 'export function v() { return ' + i + '; }\\n');
      let id;
      await dumps(() => v(), { ...opts, ship: { blobs: 'none', watch: { maxFolders: 1 }, onBuild: (b) => (id = b.id) } });
      if (id === buildManifest(opts).id) same++;
    }
    await new Promise((r) => setImmediate(r));
    console.log(JSON.stringify({ same, warnings }));
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repo, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { same: number; warnings: { code: string; message: string }[] };
  assert.equal(out.same, 5, 'every call shipped the current tree');
  assert.equal(out.warnings.length, 1, JSON.stringify(out.warnings));
  assert.equal(out.warnings[0]!.code, 'MP_TREE_WATCH_FALLBACK');
  assert.match(out.warnings[0]!.message, /more than 1 folders to watch \(ship\.watch\.maxFolders/);
});

test('watch: false and MODULEPICKLE_WATCH=0 choose the full check without a warning', () => {
  const project = join(work, 'off');
  makeProject(project, 10);
  const script = `
    import { pathToFileURL } from 'node:url';
    const { watchedBuild, treeWatches } = await import(pathToFileURL(${JSON.stringify(join(repo, 'src/ship/tree-watch.ts'))}).href);
    const warnings = [];
    process.on('warning', (w) => warnings.push(w.code));
    await watchedBuild({ root: ${JSON.stringify(project)}, watch: false });
    await watchedBuild({ root: ${JSON.stringify(project)}, watch: process.env.MODULEPICKLE_WATCH === '0' ? undefined : false });
    await new Promise((r) => setImmediate(r));
    console.log(JSON.stringify({ watched: treeWatches().length, warnings }));
  `;
  for (const env of [{}, { MODULEPICKLE_WATCH: '0' }]) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repo, encoding: 'utf8', env: { ...process.env, ...env } });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()!), { watched: 0, warnings: [] });
  }
});

test('watchers never keep a process alive', () => {
  const project = join(work, 'alive');
  makeProject(project, 10);
  const script = `
    import { pathToFileURL } from 'node:url';
    const { watchedBuild, treeWatches } = await import(pathToFileURL(${JSON.stringify(join(repo, 'src/ship/tree-watch.ts'))}).href);
    await watchedBuild({ root: ${JSON.stringify(project)}, cacheDir: ${JSON.stringify(join(work, 'alive-cache'))} });
    console.log(treeWatches().length);
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repo, encoding: 'utf8', timeout: 20_000 });
  assert.equal(r.status, 0, `exited by itself: ${r.stderr} ${r.signal ?? ''}`);
  assert.equal(r.stdout.trim(), '1');
});
