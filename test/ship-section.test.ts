// The `ship` payload section: dumps ships the tree when local modules are referenced, loads materializes it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  CountingBlobSource, ProjectBlobSource, ShipError, dumps, dumpsSync, loads, loadsSync, localModuleUrl, localModulesKey, projectRootKey,
  treeDirKey, type ShipBuild,
} from '../src/index.ts';
import { sharedNodeModules, tempFolders } from './fixtures/ship/make-project.ts';
import { LocalRef, testRegistry, type RestoredRef } from './fixtures/ship/local-ref.ts';

const receiver = fileURLToPath(new URL('./fixtures/ship/loads-receiver.mjs', import.meta.url));
const { tmp, project } = tempFolders();
type Main = { run(x: number): { sum: number }; lazy(): Promise<string>; version: string };

test('dumps ships the tree of a referenced local module; loads materializes it and the reference resolves there', async () => {
  const dir = project();
  const registry = testRegistry();
  const client = tmp('mp-client-');
  const bytes = await dumps({ main: new LocalRef(join(dir, 'src/main.ts')) }, { registry, ship: { cacheDir: client } });
  assert.ok(!Buffer.from(bytes).includes(Buffer.from(dir)), 'no absolute client path in the payload');
  const cacheDir = tmp('mp-recv-');
  // the process that made a payload resolves it to its own original modules (identity kept, nothing copied)
  const same = (await loads(bytes, { registry, cacheDir, nodeModules: sharedNodeModules })) as { main: RestoredRef };
  assert.equal(same.main.url, pathToFileURL(join(realpathSync(dir), 'src/main.ts')).href);
  assert.deepEqual(readdirSync(cacheDir), []);
  // any other receiver (here forced with materialize: 'always') gets the shipped tree
  const back = (await loads(bytes, { registry, cacheDir, nodeModules: sharedNodeModules, materialize: 'always' })) as { main: RestoredRef };
  assert.equal(back.main.path, 'src/main.ts');
  assert.ok(back.main.url.startsWith(`file://${cacheDir}/`));
  const m = (await import(back.main.url)) as Main;
  assert.equal(m.run(4).sum, 7);
  // synchronous twins work too when no asynchronous layer work is needed (tsx is active in this process)
  const again = loadsSync(dumpsSync(new LocalRef(join(dir, 'src/util.ts')), { registry, ship: { cacheDir: client } }), { registry, cacheDir, nodeModules: sharedNodeModules, materialize: 'always' }) as RestoredRef;
  assert.equal(again.path, 'src/util.ts');
});

test('no local module referenced: no ship section; code: false refuses a shipped tree', async () => {
  const registry = testRegistry();
  const plain = await dumps({ a: 1 }, { registry });
  assert.deepEqual(await loads(plain, { code: false, registry }), { a: 1 });
  const dir = project();
  const bytes = await dumps(new LocalRef(join(dir, 'src/util.ts')), { registry, ship: { cacheDir: tmp('mp-client-') } });
  await assert.rejects(loads(bytes, { registry, code: false }), { code: 'ERR_MP_CODE_REFUSED' });
  const off = dumps(new LocalRef(join(dir, 'src/util.ts')), { registry, ship: false });
  await assert.rejects(off.then((b) => loads(b, { registry, cacheDir: tmp('mp-recv-') })), { code: 'ERR_MP_NO_TREE' });
});

test('errors: a module outside the root; a tree over the size limit', async () => {
  const registry = testRegistry();
  const dir = project();
  const other = project();
  await assert.rejects(dumps(new LocalRef(join(other, 'src/util.ts')), { registry, root: dir }), (err: unknown) => err instanceof ShipError && err.code === 'ERR_MP_OUTSIDE_ROOT');
  await assert.rejects(dumps(new LocalRef(join(dir, 'src/util.ts')), { registry, ship: { maxBytes: 100, cacheDir: tmp('mp-client-') } }), { code: 'ERR_MP_SHIP_TOO_LARGE' });
});

test("blobs: 'none' + a blob source: a receiver holding version 1 fetches only the edited file's blob", async () => {
  const dir = project();
  const registry = testRegistry();
  const client = tmp('mp-client-');
  const cacheDir = tmp('mp-recv-');
  const builds: ShipBuild[] = [];
  const opts = { registry, ship: { cacheDir: client, blobs: 'none' as const, onBuild: (b: ShipBuild) => builds.push(b) } };
  const p1 = await dumps(new LocalRef(join(dir, 'src/main.ts')), opts);
  const s1 = new CountingBlobSource(new ProjectBlobSource(builds[0]!));
  const r1 = (await loads(p1, { registry, cacheDir, nodeModules: sharedNodeModules, blobSource: s1, materialize: 'always' })) as RestoredRef;
  assert.equal(s1.fetched.length, builds[0]!.manifest.entries.filter((e) => e.kind === 'file').length);
  writeFileSync(join(dir, 'src/dyn.js'), "export const value = 'dyn-v2';\n");
  const p2 = await dumps(new LocalRef(join(dir, 'src/main.ts')), opts);
  assert.ok(p2.byteLength < 4000, `manifest-only payload is small (${p2.byteLength} bytes)`);
  const s2 = new CountingBlobSource(new ProjectBlobSource(builds[1]!));
  const r2 = (await loads(p2, { registry, cacheDir, nodeModules: sharedNodeModules, blobSource: s2, materialize: 'always' })) as RestoredRef;
  assert.equal(s2.fetched.length, 1);
  assert.equal(await ((await import(r2.url)) as Main).lazy(), 'dyn-v2');
  assert.equal(await ((await import(r1.url)) as Main).lazy(), 'dyn-v1');
  assert.equal(typeof treeDirKey, 'symbol');
});

test('through the codec to a node process that cannot read the project (unshare -m + tmpfs): new and old versions', async () => {
  const canUnshare = spawnSync('unshare', ['-m', 'true']).status === 0;
  const dir = project();
  const registry = testRegistry();
  const work = tmp('mp-e2e-');
  const client = join(work, 'client');
  const p1 = join(work, 'p1.bin');
  writeFileSync(p1, await dumps(new LocalRef(join(dir, 'src/main.ts')), { registry, ship: { cacheDir: client } }));
  writeFileSync(join(dir, 'src/util.ts'), readFileSync(join(dir, 'src/util.ts'), 'utf8').replace('a + b', 'a * b'));
  const p2 = join(work, 'p2.bin');
  writeFileSync(p2, await dumps(new LocalRef(join(dir, 'src/main.ts')), { registry, ship: { cacheDir: client } }));
  const job = JSON.stringify({ cacheDir: join(work, 'recv'), nodeModules: sharedNodeModules, project: dir, payloads: [p1, p2], arg: 4 });
  const r = canUnshare
    ? spawnSync('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs none "$1" && shift && exec "$@"', 'sh', dir, process.execPath, receiver, job], { cwd: work, encoding: 'utf8' })
    : spawnSync(process.execPath, [receiver, job], { cwd: work, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { projectEntries: unknown; steps: { result: { sum: number; shared: string; greet: string; tags: string[] } }[]; lazy: string[] };
  if (canUnshare) assert.deepEqual(out.projectEntries, []);
  assert.equal(out.steps[0]!.result.sum, 7);
  assert.equal(out.steps[0]!.result.shared, 'shared-v1');
  assert.equal(out.steps[0]!.result.greet, 'hello world');
  assert.equal(out.steps[1]!.result.sum, 12);
  assert.deepEqual(out.steps[1]!.result.tags, ['legacy:radius']);
  assert.deepEqual(out.lazy, ['dyn-v1', 'dyn-v1']);
});

test('contract: a layer that fills the localModulesKey Set itself and pins the root under projectRootKey', async () => {
  const dir = project();
  class Direct {
    constructor(readonly file: string) {}
  }
  const registry = testRegistry().register(Direct, {
    name: 'test.Direct',
    code: true,
    reduce: (d, ctx) => {
      ctx.scratch.set(projectRootKey, join(dir, 'packages/shared'));
      const set = (ctx.scratch.get(localModulesKey) as Set<string> | undefined) ?? new Set<string>();
      ctx.scratch.set(localModulesKey, set.add(d.file));
      return 'index.js';
    },
    restore: (path: string, ctx) => Object.assign(new Direct(''), { url: localModuleUrl(ctx, path) }),
  });
  const bytes = await dumps(new Direct(join(dir, 'packages/shared/index.js')), { registry, ship: { cacheDir: tmp('mp-client-') } });
  const back = (await loads(bytes, { registry, cacheDir: tmp('mp-recv-'), nodeModules: false, materialize: 'always' })) as { url: string };
  assert.equal(((await import(back.url)) as { shared: string }).shared, 'shared-v1');
  assert.ok(back.url.endsWith('/tree/index.js'), back.url);
});

test("manifest: 'id': the payload names its version by id; the receiver uses its tree, or fetches and verifies the manifest", async () => {
  const registry = testRegistry();
  const dir = project();
  let build: ShipBuild | undefined;
  const ship = { blobs: 'none' as const, manifest: 'id' as const, cacheDir: tmp('mp-client-'), onBuild: (b: ShipBuild) => void (build = b) };
  const inline = await dumps(new LocalRef(join(dir, 'src/util.ts')), { registry, ship: { ...ship, manifest: 'inline' as const } });
  const bytes = await dumps(new LocalRef(join(dir, 'src/util.ts')), { registry, ship });
  assert.ok(bytes.length < 400 && inline.length > bytes.length + build!.text.length / 2, `by id ${bytes.length} B, inline ${inline.length} B`);
  const files = new ProjectBlobSource(build!);
  const withManifest = (text: string): CountingBlobSource =>
    new CountingBlobSource({
      missing: async (hs) => hs.filter((h) => h !== build!.id && !build!.files.has(h)),
      get: async (hs) => {
        const out = await files.get(hs.filter((h) => h !== build!.id));
        if (hs.includes(build!.id)) out.set(build!.id, new TextEncoder().encode(text));
        return out;
      },
    });
  const cases: { name: string; source?: () => CountingBlobSource; code?: string; fetched?: number }[] = [
    { name: 'no blob source, version not cached', code: 'ERR_MP_BLOB_MISSING' },
    { name: 'a source that lies about the manifest', source: () => withManifest(build!.text.replace('src/', 'srx/')), code: 'ERR_MP_BLOB_HASH_MISMATCH' },
    { name: 'a source with the manifest and the files', source: () => withManifest(build!.text), fetched: 1 + build!.files.size },
  ];
  const cacheDir = tmp('mp-recv-');
  for (const c of cases) {
    const source = c.source?.();
    const p = loads(bytes, { registry, cacheDir, nodeModules: sharedNodeModules, materialize: 'always', ...(source ? { blobSource: source } : {}) });
    if (c.code) await assert.rejects(p, { code: c.code }, c.name);
    else {
      assert.equal(((await p) as RestoredRef).path, 'src/util.ts', c.name);
      assert.equal(source!.fetched.length, c.fetched, c.name);
    }
  }
  // now cached: no source needed, nothing fetched
  assert.equal(((await loads(bytes, { registry, cacheDir, nodeModules: sharedNodeModules, materialize: 'always' })) as RestoredRef).path, 'src/util.ts');
  const malformed = Buffer.from(bytes);
  const at = malformed.indexOf(Buffer.from(build!.id));
  malformed.write('zz', at);
  await assert.rejects(loads(malformed, { registry, cacheDir, materialize: 'always' }), { code: 'ERR_MP_BAD_VALUE' });
});
