// Receiver side: hostile manifests, atomic trees, versions, racing and killed receivers, leases and GC.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CountingBlobSource, InlineBlobSource, ProjectBlobSource, ShipError, buildManifest, checkPackage, gcCache, importFromTree,
  materializeTree, openTree, releaseTree,
} from '../src/index.ts';
import { withCacheLock } from '../src/runtime/cache-lock.ts';
import { makeProject, sharedNodeModules, tempFolders } from './fixtures/ship/make-project.ts';
import { writePayloadFile } from './fixtures/ship/payload-file.ts';

const fixtures = fileURLToPath(new URL('./fixtures/ship/', import.meta.url));
const { temps, tmp } = tempFolders();
const sha = (b: string | Uint8Array) => createHash('sha256').update(b).digest('hex');
const manifestText = (files: unknown[][], packages: unknown[] = []) => JSON.stringify({ format: 1, files, packages });
const treesIn = (cache: string) => (existsSync(join(cache, 'ns')) ? readdirSync(join(cache, 'ns')) : []).flatMap((ns) => (existsSync(join(cache, 'ns', ns, 'trees')) ? readdirSync(join(cache, 'ns', ns, 'trees')) : []));

test('hostile manifests are refused with typed errors and nothing is written outside the cache', async () => {
  const sandbox = tmp('mp-hostile-');
  const cacheDir = join(sandbox, 'cache');
  const hello = Buffer.from('hello');
  const H = sha(hello);
  const good = new InlineBlobSource([[H, hello]]);
  const wrong = new InlineBlobSource([[H, Buffer.from('world')]]);
  const big = new InlineBlobSource([[H, Buffer.from('hello, much longer')]]);
  const f = (path: string, hash = H, size = 5) => [path, 'f', hash, size];
  const l = (path: string, target: string) => [path, 'l', target];
  const cases: { name: string; text: unknown; source?: InlineBlobSource; limits?: object; code: string }[] = [
    { name: 'parent traversal', text: manifestText([f('../evil.txt')]), code: 'ERR_MP_UNSAFE_PATH' },
    { name: 'traversal inside a path', text: manifestText([f('a/../../evil.txt')]), code: 'ERR_MP_UNSAFE_PATH' },
    { name: 'absolute path', text: manifestText([f(join(sandbox, 'evil.txt'))]), code: 'ERR_MP_UNSAFE_PATH' },
    { name: 'NUL byte', text: manifestText([f('a\0b')]), code: 'ERR_MP_UNSAFE_PATH' },
    { name: 'backslash traversal', text: manifestText([f('..\\evil.txt')]), code: 'ERR_MP_UNSAFE_PATH' },
    { name: 'drive letter', text: manifestText([f('C:/evil.txt')]), code: 'ERR_MP_UNSAFE_PATH' },
    { name: 'empty segment', text: manifestText([f('a//b')]), code: 'ERR_MP_UNSAFE_PATH' },
    { name: 'dot segment', text: manifestText([f('./a')]), code: 'ERR_MP_UNSAFE_PATH' },
    { name: 'empty path', text: manifestText([f('')]), code: 'ERR_MP_UNSAFE_PATH' },
    { name: 'symlink to an absolute path', text: manifestText([l('link', sandbox)]), code: 'ERR_MP_SYMLINK_ESCAPE' },
    { name: 'symlink up and out', text: manifestText([l('a/link', '../../..')]), code: 'ERR_MP_SYMLINK_ESCAPE' },
    { name: 'symlink to the tree root', text: manifestText([l('link', '.')]), code: 'ERR_MP_SYMLINK_ESCAPE' },
    { name: 'symlink with a NUL', text: manifestText([l('link', 'a\0')]), code: 'ERR_MP_SYMLINK_ESCAPE' },
    { name: 'file written through a symlink', text: manifestText([l('a', 'b'), f('a/x')]), code: 'ERR_MP_UNSAFE_PATH' },
    { name: 'file under a file', text: manifestText([f('a'), f('a/x')]), code: 'ERR_MP_UNSAFE_PATH' },
    { name: 'duplicate path', text: manifestText([f('a'), f('a')]), code: 'ERR_MP_MANIFEST_INVALID' },
    { name: 'unsorted paths', text: manifestText([f('b'), f('a')]), code: 'ERR_MP_MANIFEST_INVALID' },
    { name: 'bad hash', text: manifestText([f('a', 'zz')]), code: 'ERR_MP_MANIFEST_INVALID' },
    { name: 'negative size', text: manifestText([f('a', H, -1)]), code: 'ERR_MP_MANIFEST_INVALID' },
    { name: 'unknown entry kind', text: manifestText([['a', 'dev', 1]]), code: 'ERR_MP_MANIFEST_INVALID' },
    { name: 'unknown format', text: JSON.stringify({ format: 2, files: [], packages: [] }), code: 'ERR_MP_MANIFEST_INVALID' },
    { name: 'not JSON', text: '{"format":1,', code: 'ERR_MP_MANIFEST_INVALID' },
    { name: 'not a string', text: 42, code: 'ERR_MP_MANIFEST_INVALID' },
    { name: 'blob does not match its hash', text: manifestText([f('a.js')]), source: wrong, code: 'ERR_MP_BLOB_HASH_MISMATCH' },
    { name: 'blob larger than the manifest says', text: manifestText([f('a.js')]), source: big, code: 'ERR_MP_BLOB_SIZE_MISMATCH' },
    { name: 'oversized file', text: manifestText([f('a.js', H, 5)]), limits: { maxFileBytes: 4 }, code: 'ERR_MP_MANIFEST_TOO_LARGE' },
    { name: 'oversized total', text: manifestText([f('a.js'), f('b.js')]), limits: { maxBytes: 9 }, code: 'ERR_MP_MANIFEST_TOO_LARGE' },
    { name: 'too many entries', text: manifestText([f('a.js'), f('b.js')]), limits: { maxEntries: 1 }, code: 'ERR_MP_MANIFEST_TOO_LARGE' },
    { name: 'huge declared size', text: manifestText([f('a.js', H, 2 ** 60)]), code: 'ERR_MP_MANIFEST_INVALID' },
    { name: 'package name with a path', text: manifestText([f('a.js')], [['../../etc', '1.0.0']]), code: 'ERR_MP_MANIFEST_INVALID' },
    { name: 'blob nowhere', text: manifestText([f('a.js')]), source: new InlineBlobSource([]), code: 'ERR_MP_BLOB_MISSING' },
  ];
  for (const c of cases) {
    await assert.rejects(materializeTree(c.text, { cacheDir, nodeModules: false, blobSource: c.source ?? good, ...c.limits }), (err: unknown) => {
      assert.ok(err instanceof ShipError, `${c.name}: ${String(err)}`);
      assert.equal(err.code, c.code, `${c.name}: ${err.message}`);
      return true;
    });
  }
  const file = join(sandbox, 'not-a-folder');
  writeFileSync(file, '');
  await assert.rejects(materializeTree(manifestText([f('a.js')]), { cacheDir: join(file, 'cache'), nodeModules: false, blobSource: good }), { code: 'ERR_MP_CACHE_UNWRITABLE' });
  rmSync(file);
  assert.deepEqual(readdirSync(sandbox), ['cache']);
  assert.ok(!existsSync(join(cacheDir, 'ns')) || treesIn(cacheDir).length === 0);
  assert.ok(!existsSync(join(cacheDir, 'blobs', H.slice(0, 2), H)), 'a mismatching blob is never stored');
  // the same good manifest then works
  const ok = await materializeTree(manifestText([f('a.js')]), { cacheDir, nodeModules: false, blobSource: good });
  assert.equal(readFileSync(join(ok.dir, 'a.js'), 'utf8'), 'hello');
});

test('a tree matches its manifest: content, exec bit, symlinks; materializing again fetches nothing', async () => {
  const project = makeProject();
  temps.push(project);
  const cacheDir = tmp('mp-cache-');
  const build = buildManifest({ from: project, cacheDir });
  const tree = await materializeTree(build.text, { cacheDir, blobSource: new ProjectBlobSource(build), nodeModules: sharedNodeModules });
  assert.equal(tree.id, build.id);
  assert.equal(tree.created, true);
  for (const e of build.manifest.entries) {
    const p = join(tree.dir, e.path);
    if (e.kind === 'symlink') assert.equal(readlinkSync(p), e.target);
    else {
      assert.equal(sha(readFileSync(p)), e.hash, e.path);
      assert.equal((lstatSync(p).mode & 0o111) !== 0, e.exec, e.path);
    }
  }
  assert.equal(readlinkSync(join(tree.wrapper, '..', '..', 'node_modules')), realpathSync(sharedNodeModules));
  const again = await materializeTree(build.text, { cacheDir, blobSource: new ProjectBlobSource(build), nodeModules: sharedNodeModules });
  assert.deepEqual([again.dir, again.created, again.fetched], [tree.dir, false, 0]);
});

test('versions: each edited file costs one blob; old modules keep old code and their own dynamic imports', async () => {
  const project = makeProject();
  temps.push(project);
  const cacheDir = tmp('mp-cache-');
  const opts = { cacheDir, nodeModules: sharedNodeModules };
  const v1 = buildManifest({ from: project, cacheDir });
  const src1 = new CountingBlobSource(new ProjectBlobSource(v1));
  const t1 = await openTree(v1.text, { ...opts, blobSource: src1 });
  assert.equal(src1.fetched.length, v1.manifest.entries.filter((e) => e.kind === 'file').length);
  const m1 = await importFromTree<{ run(x: number): { sum: number }; lazy(): Promise<string> }>(t1.dir, 'src/main.ts');
  writeFileSync(join(project, 'src/dyn.js'), "export const value = 'dyn-v2';\n");
  writeFileSync(join(project, 'src/util.ts'), 'export function add(a: number, b: number): number {\n  return a * b;\n}\n');
  const v2 = buildManifest({ from: project, cacheDir });
  const src2 = new CountingBlobSource(new ProjectBlobSource(v2));
  const t2 = await openTree(v2.text, { ...opts, blobSource: src2 });
  assert.equal(src2.fetched.length, 2);
  assert.equal(src2.getCalls, 1);
  const m2 = await importFromTree<typeof m1>(t2.dir, 'src/main.ts');
  assert.equal(m1.run(4).sum, 7);
  assert.equal(m2.run(4).sum, 12);
  assert.equal(await m2.lazy(), 'dyn-v2');
  assert.equal(await m1.lazy(), 'dyn-v1', 'a dynamic import in old code resolves in its own tree');
  // one more single-file edit: exactly one blob
  writeFileSync(join(project, 'data/config.json'), '{ "factor": 4 }\n');
  const v3 = buildManifest({ from: project, cacheDir });
  const src3 = new CountingBlobSource(new ProjectBlobSource(v3));
  await openTree(v3.text, { ...opts, blobSource: src3 });
  assert.deepEqual(src3.fetched, [(v3.manifest.entries.find((e) => e.path === 'data/config.json') as { hash: string }).hash]);
  t1.release();
  t2.release();
});

test('releasing a tree purges its CommonJS modules from require.cache', async () => {
  const project = makeProject();
  temps.push(project);
  const cacheDir = tmp('mp-cache-');
  const build = buildManifest({ from: project, cacheDir });
  const t = await openTree(build.text, { cacheDir, nodeModules: sharedNodeModules, blobSource: new ProjectBlobSource(build) });
  const req = createRequire(import.meta.url);
  const legacy = req(join(t.dir, 'src/legacy.cjs')) as { greet(n: string): string };
  assert.equal(legacy.greet('x'), 'hello x');
  assert.ok(Object.keys(req.cache).some((k) => k.startsWith(t.dir)));
  t.release();
  assert.ok(!Object.keys(req.cache).some((k) => k.startsWith(t.dir)));
  assert.ok(!existsSync(join(t.wrapper, 'leases', String(process.pid))));
});

test('package checks: missing package and another major version name both versions', async () => {
  const nm = tmp('mp-nm-');
  mkdirSync(join(nm, 'node_modules', 'left-pad'), { recursive: true });
  writeFileSync(join(nm, 'node_modules', 'left-pad', 'package.json'), JSON.stringify({ name: 'left-pad', version: '2.1.0' }));
  const nodeModules = join(nm, 'node_modules');
  assert.equal(checkPackage('left-pad', '2.0.3', { nodeModules }).version, '2.1.0');
  assert.throws(() => checkPackage('left-pad', '1.3.0', { nodeModules }), (err: ShipError) => err.code === 'ERR_MP_PACKAGE_VERSION' && /left-pad@1\.3\.0/.test(err.message) && /left-pad@2\.1\.0/.test(err.message));
  assert.throws(() => checkPackage('right-pad', '1.0.0', { nodeModules }), (err: ShipError) => err.code === 'ERR_MP_PACKAGE_MISSING' && /right-pad@1\.0\.0/.test(err.message));
  assert.throws(() => checkPackage('left-pad', '0.4.0', { nodeModules }), { code: 'ERR_MP_PACKAGE_VERSION' });
  // an import of a package the receiver lacks, from shipped code, names the sender's version
  const project = makeProject();
  temps.push(project);
  const cacheDir = tmp('mp-cache-');
  const build = buildManifest({ from: project, cacheDir });
  const t = await openTree(build.text, { cacheDir, nodeModules, blobSource: new ProjectBlobSource(build) });
  await assert.rejects(importFromTree(t.dir, 'src/main.ts', { nodeModules }), (err: ShipError) => {
    assert.equal(err.code, 'ERR_MP_PACKAGE_MISSING');
    assert.match(err.message, /acorn@8\.\d+\.\d+/);
    return true;
  });
  await assert.rejects(importFromTree(t.dir, '../x.js'), { code: 'ERR_MP_UNSAFE_PATH' });
  t.release();
});

function run(args: string[], input?: string): Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code, signal) => resolve({ code, signal, out, err }));
    child.stdin.end(input ?? '');
  });
}

test('8 receiver processes racing for one id build exactly one correct tree', async () => {
  const project = makeProject();
  temps.push(project);
  const work = tmp('mp-race-');
  const cacheDir = join(work, 'cache');
  const build = buildManifest({ from: project, cacheDir });
  const payload = await writePayloadFile(join(work, 'p.json'), build);
  const go = join(work, 'go');
  const procs = Array.from({ length: 8 }, () => run([join(fixtures, 'materialize.mjs'), payload, cacheDir, go]));
  writeFileSync(go, '');
  const results = await Promise.all(procs);
  const parsed = results.map((r) => {
    assert.equal(r.code, 0, r.err);
    return JSON.parse(r.out) as { dir: string; created: boolean };
  });
  assert.equal(new Set(parsed.map((p) => p.dir)).size, 1);
  assert.equal(parsed.filter((p) => p.created).length, 1);
  assert.deepEqual(treesIn(cacheDir), [build.id]);
  assert.deepEqual(existsSync(join(cacheDir, 'tmp')) ? readdirSync(join(cacheDir, 'tmp')) : [], []);
  for (const e of build.manifest.entries) if (e.kind === 'file') assert.equal(sha(readFileSync(join(parsed[0]!.dir, e.path))), e.hash);
});

test('a receiver killed during extraction leaves nothing that is used later', async () => {
  const project = makeProject();
  temps.push(project);
  const work = tmp('mp-kill-');
  const cacheDir = join(work, 'cache');
  const build = buildManifest({ from: project, cacheDir });
  const payload = await writePayloadFile(join(work, 'p.json'), build);
  const marker = join(work, 'paused');
  const child = spawn(process.execPath, [join(fixtures, 'materialize.mjs'), payload, cacheDir], { env: { ...process.env, MODULEPICKLE_TEST_EXTRACT_PAUSE: marker }, stdio: 'ignore' });
  const exited = new Promise((r) => child.on('exit', r));
  while (!existsSync(marker) || !readFileSync(marker, 'utf8')) await new Promise((r) => setTimeout(r, 5));
  const partial = readFileSync(marker, 'utf8');
  child.kill('SIGKILL');
  await exited;
  assert.ok(existsSync(partial), 'the half-built tree is in tmp/');
  assert.deepEqual(treesIn(cacheDir), [], 'no tree looks complete');
  const t = await openTree(build.text, { cacheDir, nodeModules: false });
  assert.equal(t.created, true);
  assert.equal(t.fetched, 0, 'verified blobs stored before the kill are reused');
  for (const e of build.manifest.entries) if (e.kind === 'file') assert.equal(sha(readFileSync(join(t.dir, e.path))), e.hash);
  gcCache({ cacheDir });
  assert.ok(!existsSync(partial), 'the GC removes the dead extraction');
  t.release();
});

test('GC: bounded by bytes, LRU first, never a tree leased here or by another live process', async () => {
  const cacheDir = tmp('mp-gc-');
  const work = tmp('mp-gc-work-');
  const make = async (n: number) => {
    const body = Buffer.alloc(100_000, n);
    const text = manifestText([[`f${n}.bin`, 'f', sha(body), body.length]]);
    return { text, source: new InlineBlobSource([[sha(body), body]]) };
  };
  const [a, b, c, d] = await Promise.all([1, 2, 3, 4].map(make));
  const ta = await openTree(a!.text, { cacheDir, nodeModules: false, blobSource: a!.source });
  const tb = await materializeTree(b!.text, { cacheDir, nodeModules: false, blobSource: b!.source });
  const tc = await materializeTree(c!.text, { cacheDir, nodeModules: false, blobSource: c!.source });
  // d is leased by another process that stays alive until we close its stdin
  const payload = join(work, 'd.json');
  const dBody = Buffer.alloc(100_000, 4);
  writeFileSync(payload, JSON.stringify({ manifest: d!.text, blobs: { [sha(dBody)]: dBody.toString('base64') } }));
  const holder = spawn(process.execPath, [join(fixtures, 'materialize.mjs'), payload, cacheDir, '-', 'hold'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise<string>((r) => holder.stdout.once('data', (x) => r(String(x))));
  const td = JSON.parse(line) as { dir: string };
  const r1 = gcCache({ cacheDir, maxBytes: 250_000 });
  assert.equal(r1.bytesBefore, 400_000);
  assert.deepEqual(r1.removedTrees.sort(), [tb.id, tc.id].sort());
  assert.equal(r1.keptInUse, 2);
  assert.ok(existsSync(ta.dir) && existsSync(td.dir));
  const r2 = gcCache({ cacheDir, maxBytes: 0 });
  assert.deepEqual(r2.removedTrees, []);
  holder.stdin.end();
  await new Promise((r) => holder.on('exit', r));
  ta.release();
  const r3 = gcCache({ cacheDir, maxBytes: 0 });
  assert.equal(r3.removedTrees.length, 2);
  assert.equal(r3.bytesAfter, 0);
  assert.deepEqual(treesIn(cacheDir), []);
  // a tree removed by the GC is rebuilt on the next use
  const again = await openTree(b!.text, { cacheDir, nodeModules: false, blobSource: b!.source });
  assert.equal(again.created, true);
  releaseTree(again.dir);
  assert.ok(spawnSync('true').status === 0);
});

test('a cache lock left by a dead process is broken; a live one is not', async () => {
  const cacheDir = tmp('mp-lock-');
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  writeFileSync(join(cacheDir, 'lock'), dead.stdout);
  const body = Buffer.from('locked');
  const t = await openTree(manifestText([['a.txt', 'f', sha(body), body.length]]), { cacheDir, nodeModules: false, blobSource: new InlineBlobSource([[sha(body), body]]) });
  assert.equal(readFileSync(join(t.dir, 'a.txt'), 'utf8'), 'locked');
  assert.ok(!existsSync(join(cacheDir, 'lock')));
  t.release();
  // held by a live process (this one): not broken; the waiter gives up with a typed error after its timeout
  writeFileSync(join(cacheDir, 'lock'), String(process.pid));
  assert.throws(() => withCacheLock(cacheDir, () => 1, 200), { code: 'ERR_MP_CACHE_LOCKED' });
  assert.equal(readFileSync(join(cacheDir, 'lock'), 'utf8'), String(process.pid));
});
