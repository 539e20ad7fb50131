// Client side of code shipping: root detection, the file walk, the manifest, the stat cache, size limits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync, type Stats } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ProjectBlobSource, ShipError, StatCache, blobHashes, buildManifest, diffManifests, findProjectRoot, walkProject,
} from '../src/index.ts';
import { files, tempFolders } from './fixtures/ship/make-project.ts';

const { tmp, project } = tempFolders();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const paths = (dir: string, opts: Parameters<typeof walkProject>[1] = {}) => walkProject(dir, opts).entries.map((e) => e.rel);

test('walk: what ships from the fixture project', () => {
  const dir = project();
  const got = paths(dir, { extraFiles: [join(dir, 'dist-ignored/loaded.js')] });
  const expected = [
    '.gitignore', '.modulepickleignore', 'bin/run.sh', 'data/config.json', 'dist-ignored/loaded.js', 'node_modules/@app/shared',
    'package.json', 'packages/shared/index.js', 'packages/shared/package.json', 'src/dyn.js', 'src/esm-helper.mjs',
    'src/label.js', 'src/legacy.cjs', 'src/main.ts', 'src/tagged.ts', 'src/util-link.ts', 'src/util.ts', 'tsconfig.json',
  ];
  assert.deepEqual(got, expected);
  for (const left of ['secret.txt', 'debug.log', 'notes/todo.md', '.cache/x.bin', 'node_modules/acorn']) assert.ok(!got.includes(left), left);
  assert.ok(Object.keys(files).includes('secret.txt'));
});

test('walk: include/exclude options, extra files outside the root or in node_modules', () => {
  const dir = project();
  const cases: { name: string; opts: Parameters<typeof walkProject>[1]; has: string[]; hasNot: string[] }[] = [
    { name: 'include forces ignored files in', opts: { include: ['secret.txt', 'notes/**'] }, has: ['secret.txt', 'notes/todo.md'], hasNot: ['debug.log'] },
    { name: 'exclude drops files and folders', opts: { exclude: ['data/', '*.mjs'] }, has: ['src/main.ts'], hasNot: ['data/config.json', 'src/esm-helper.mjs'] },
    { name: 'ignored extra file ships', opts: { extraFiles: [join(dir, 'secret.txt')] }, has: ['secret.txt'], hasNot: [] },
    {
      name: 'extra files outside the root or in node_modules do not ship',
      opts: { extraFiles: ['/etc/hostname', join(dir, 'node_modules/acorn/package.json'), join(dir, 'node_modules/@app/shared/index.js')] },
      has: ['packages/shared/index.js'],
      hasNot: ['node_modules/acorn/package.json', 'hostname'],
    },
  ];
  for (const c of cases) {
    const got = paths(dir, c.opts);
    for (const h of c.has) assert.ok(got.includes(h), `${c.name}: has ${h}`);
    for (const h of c.hasNot) assert.ok(!got.some((g) => g.endsWith(h)), `${c.name}: has not ${h}`);
  }
});

test('walk: git rules (info/exclude, nested .gitignore with negation, ignored folder) and a symlink escaping the root', () => {
  const dir = project();
  execFileSync('git', ['init', '-q', dir]);
  writeFileSync(join(dir, '.git/info/exclude'), 'src/label.js\n');
  mkdirSync(join(dir, 'src/sub'), { recursive: true });
  writeFileSync(join(dir, 'src/.gitignore'), '!keep.log\nsub/\n');
  writeFileSync(join(dir, 'src/keep.log'), 'kept\n');
  writeFileSync(join(dir, 'src/drop.log'), 'dropped\n');
  writeFileSync(join(dir, 'src/sub/x.js'), 'x\n');
  symlinkSync('/etc/hostname', join(dir, 'src/outside'));
  symlinkSync('../../outside-root', join(dir, 'src/up'));
  const r = walkProject(dir);
  const got = r.entries.map((e) => e.rel);
  assert.ok(got.includes('src/keep.log'));
  for (const no of ['src/label.js', 'src/drop.log', 'src/sub/x.js', 'src/outside', 'src/up', '.git/HEAD']) assert.ok(!got.includes(no), no);
  assert.deepEqual(r.skipped.map((s) => s.rel).sort(), ['src/outside', 'src/up']);
  // and git agrees, apart from what only we leave out (caches, .modulepickleignore, symlinks we refuse)
  const gitFiles = execFileSync('git', ['ls-files', '--others', '--cached', '--exclude-standard'], { cwd: dir, encoding: 'utf8' }).trim().split('\n').sort();
  const ours = got.filter((p) => !p.startsWith('node_modules/') && p !== 'src/util-link.ts').sort();
  const onlyGit = new Set(['src/outside', 'src/up', 'src/util-link.ts', '.cache/x.bin', 'notes/todo.md']);
  assert.deepEqual(ours, gitFiles.filter((p) => !onlyGit.has(p) && !p.startsWith('node_modules/')));
});

test('walk: a repeated walk sees added and removed files and an edited .gitignore (folder listings are cached)', async () => {
  const dir = project();
  assert.ok(!paths(dir).includes('src/new.js'));
  writeFileSync(join(dir, 'src/new.js'), 'new\n');
  assert.ok(paths(dir).includes('src/new.js'));
  await sleep(80); // past the racy window: now the cached listing is trusted
  assert.ok(paths(dir).includes('src/new.js'));
  writeFileSync(join(dir, '.gitignore'), readFileSync(join(dir, '.gitignore'), 'utf8') + 'src/new.js\n');
  assert.ok(!paths(dir).includes('src/new.js'));
  rmSync(join(dir, 'src/label.js'));
  assert.ok(!paths(dir).includes('src/label.js'));
  mkdirSync(join(dir, 'src/deep/er'), { recursive: true });
  writeFileSync(join(dir, 'src/deep/er/x.js'), 'x\n');
  assert.ok(paths(dir).includes('src/deep/er/x.js'));
});

test('root detection table', () => {
  const base = tmp('mp-root-');
  const mk = (rel: string, text = '{}') => {
    mkdirSync(join(base, rel, '..'), { recursive: true });
    writeFileSync(join(base, rel), text);
  };
  mk('ws/package.json', JSON.stringify({ workspaces: ['pkgs/*'] }));
  mk('ws/pkgs/a/package.json');
  mk('ws/pkgs/a/src/x.js', '');
  mk('plain/package.json');
  mk('plain/lib/y.js', '');
  mkdirSync(join(base, 'repo/.git'), { recursive: true });
  mk('repo/sub/package.json');
  mk('repo/sub/z.js', '');
  mk('repo/tools/t.js', '');
  mk('bare/w.js', '');
  const cases = [
    { from: 'ws/pkgs/a/src/x.js', dir: 'ws', reason: 'workspace' },
    { from: 'plain/lib/y.js', dir: 'plain', reason: 'package.json' },
    { from: 'repo/sub/z.js', dir: 'repo/sub', reason: 'package.json' },
    { from: 'repo/tools/t.js', dir: 'repo', reason: 'git' },
    { from: 'bare/w.js', option: 'bare', dir: 'bare', reason: 'option' },
  ];
  for (const c of cases) {
    const r = findProjectRoot(join(base, c.from), c.option ? join(base, c.option) : undefined);
    assert.deepEqual(r, { dir: join(base, c.dir), reason: c.reason }, c.from);
  }
  assert.throws(() => findProjectRoot(join(base, 'bare/w.js'), join(base, 'nope')), { code: 'ERR_MP_NO_ROOT' });
});

test('manifest: sorted POSIX paths, exec bit, symlinks, packages, no absolute path, same id at another path', () => {
  const a = project();
  const b = project();
  const cache = tmp('mp-cache-');
  const ba = buildManifest({ from: a, cacheDir: cache });
  const bb = buildManifest({ from: b, cacheDir: cache });
  assert.equal(ba.id, bb.id);
  assert.match(ba.id, /^[0-9a-f]{64}$/);
  assert.ok(!ba.text.includes(a) && !ba.text.includes(tmpdir()) && !ba.text.includes(process.cwd()));
  const entries = ba.manifest.entries;
  assert.deepEqual(entries.map((e) => e.path), [...entries.map((e) => e.path)].sort());
  const run = entries.find((e) => e.path === 'bin/run.sh');
  assert.ok(run?.kind === 'file' && run.exec && run.size === files['bin/run.sh']!.length && /^[0-9a-f]{64}$/.test(run.hash));
  assert.ok(entries.every((e) => e.kind === 'symlink' || e.path === 'bin/run.sh' || !e.exec));
  assert.deepEqual(entries.find((e) => e.path === 'src/util-link.ts'), { path: 'src/util-link.ts', kind: 'symlink', target: 'util.ts' });
  assert.deepEqual(entries.find((e) => e.path === 'node_modules/@app/shared'), { path: 'node_modules/@app/shared', kind: 'symlink', target: '../../packages/shared' });
  assert.match(ba.manifest.packages.acorn ?? '', /^8\./);
  assert.equal(ba.root, a);
  assert.equal(ba.rootReason, 'workspace');
});

test('manifest: one edit changes exactly one entry and adds exactly one blob', async () => {
  const dir = project();
  const cache = tmp('mp-cache-');
  const v1 = buildManifest({ from: dir, cacheDir: cache });
  writeFileSync(join(dir, 'src/util.ts'), 'export function add(a: number, b: number): number {\n  return a + b + 1;\n}\n');
  const v2 = buildManifest({ from: dir, cacheDir: cache });
  assert.notEqual(v1.id, v2.id);
  assert.deepEqual(diffManifests(v1.manifest, v2.manifest), { added: [], removed: [], changed: ['src/util.ts'] });
  const old = new Set(blobHashes(v1.manifest));
  assert.equal(blobHashes(v2.manifest).filter((h) => !old.has(h)).length, 1);
});

test('stat cache: unchanged files are not rehashed; persisted in the cache folder, not the project', async () => {
  const dir = project();
  const cache = tmp('mp-cache-');
  const first = buildManifest({ from: dir, cacheDir: cache });
  assert.equal(first.hashed, first.manifest.entries.filter((e) => e.kind === 'file').length);
  await sleep(120); // let every file leave the racy window, then a build records them as clean
  buildManifest({ from: dir, cacheDir: cache });
  const warm = buildManifest({ from: dir, cacheDir: cache });
  assert.equal(warm.hashed, 0);
  assert.equal(warm.id, first.id);
  StatCache.clearMemory(); // as a fresh process: read from disk
  const cold = buildManifest({ from: dir, cacheDir: cache });
  assert.equal(cold.hashed, 0);
  assert.ok(StatCache.open(first.root, cache).file.startsWith(cache));
  assert.ok(!execFileSync('find', [dir, '-name', '*statcache*'], { encoding: 'utf8' }).trim());
  // a same-size edit is seen
  writeFileSync(join(dir, 'src/dyn.js'), "export const value = 'dyn-v9';\n");
  const edited = buildManifest({ from: dir, cacheDir: cache });
  assert.equal(edited.hashed, 1);
  assert.deepEqual(diffManifests(first.manifest, edited.manifest).changed, ['src/dyn.js']);
  assert.ok(existsSync(`${StatCache.open(first.root, cache).file}.log`), 'a small change goes to the journal, not a rewrite');
  StatCache.clearMemory(); // base + journal from disk
  await sleep(120);
  buildManifest({ from: dir, cacheDir: cache });
  const fromJournal = buildManifest({ from: dir, cacheDir: cache });
  assert.equal(fromJournal.hashed, 0);
  assert.equal(fromJournal.id, edited.id);
});

test('stat cache: racy-clean rule table', () => {
  const cache = tmp('mp-cache-');
  const sc = StatCache.open(join(cache, 'fake-root'), cache);
  const st = (mtimeMs: number, extra: Partial<Stats> = {}) => ({ size: 10, mtimeMs, ctimeMs: mtimeMs, ino: 7, mode: 0o100644, ...extra }) as Stats;
  const t = 1_700_000_000_123.456;
  const cases = [
    { name: 'modified long before hashing: trusted', rec: st(t), hashedAt: t + 5000, look: st(t), hit: true },
    { name: 'modified just before hashing: racy, rehash', rec: st(t), hashedAt: t + 10, look: st(t), hit: false },
    { name: 'whole-second timestamps need 2 s', rec: st(1_700_000_000_000), hashedAt: 1_700_000_000_000 + 1500, look: st(1_700_000_000_000), hit: false },
    { name: 'size changed', rec: st(t), hashedAt: t + 5000, look: st(t, { size: 11 }), hit: false },
    { name: 'mtime changed', rec: st(t), hashedAt: t + 5000, look: st(t + 1), hit: false },
    { name: 'inode changed (replaced by rename)', rec: st(t), hashedAt: t + 5000, look: st(t, { ino: 8 }), hit: false },
    { name: 'mode changed', rec: st(t), hashedAt: t + 5000, look: st(t, { mode: 0o100755 }), hit: false },
  ];
  for (const [i, c] of cases.entries()) {
    sc.record(`f${i}`, c.rec, 'h'.repeat(64), c.hashedAt);
  }
  sc.save();
  StatCache.clearMemory();
  const again = StatCache.open(join(cache, 'fake-root'), cache);
  for (const [i, c] of cases.entries()) assert.equal(again.lookup(`f${i}`, c.look) !== undefined, c.hit, c.name);
});

test('size limits: checked before hashing, error lists the largest files and folders and names the option', () => {
  const dir = project();
  mkdirSync(join(dir, 'assets/big'), { recursive: true });
  writeFileSync(join(dir, 'assets/big/blob.bin'), Buffer.alloc(300_000));
  writeFileSync(join(dir, 'assets/medium.bin'), Buffer.alloc(100_000));
  const cache = tmp('mp-cache-');
  const total = (err: unknown) => {
    assert.ok(err instanceof ShipError);
    assert.equal(err.code, 'ERR_MP_SHIP_TOO_LARGE');
    assert.match(err.message, /assets\/big\/blob\.bin \(293\.0 KB\)/);
    assert.match(err.message, /assets\/ \(390\.6 KB\)/);
    assert.match(err.message, /maxBytes/);
    return true;
  };
  assert.throws(() => buildManifest({ from: dir, cacheDir: cache, maxBytes: 200_000 }), total);
  assert.throws(() => buildManifest({ from: dir, cacheDir: cache, maxFileBytes: 200_000 }), (err: unknown) => {
    assert.ok(err instanceof ShipError);
    assert.equal(err.code, 'ERR_MP_SHIP_FILE_TOO_LARGE');
    assert.equal(err.file, 'assets/big/blob.bin');
    assert.match(err.message, /maxFileBytes/);
    return true;
  });
  // nothing was hashed: no stat cache was written
  assert.throws(() => StatCache.open(dir, cache) && readFileSync(StatCache.open(dir, cache).file));
  assert.ok(buildManifest({ from: dir, cacheDir: cache, maxBytes: 10_000_000 }).id);
});

test('errors: nothing to ship, file changed while shipping', async () => {
  const dir = tmp('mp-empty-');
  writeFileSync(join(dir, 'package.json'), '{}');
  writeFileSync(join(dir, '.modulepickleignore'), '*\n');
  assert.throws(() => buildManifest({ from: dir, statCache: false }), { code: 'ERR_MP_SHIP_EMPTY' });
  const p = project();
  const b = buildManifest({ from: p, statCache: false });
  writeFileSync(join(p, 'src/util.ts'), 'changed\n');
  const hash = (b.manifest.entries.find((e) => e.path === 'src/util.ts') as { hash: string }).hash;
  await assert.rejects(new ProjectBlobSource(b).get([hash]), { code: 'ERR_MP_SHIP_CHANGED' });
  chmodSync(join(p, 'bin/run.sh'), 0o644);
  const c = buildManifest({ from: p, statCache: false });
  assert.equal((c.manifest.entries.find((e) => e.path === 'bin/run.sh') as { exec: boolean }).exec, false);
});
