/* Module references: builtins, installed packages and local modules travel by reference and keep identity. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import * as path from 'node:path';
import fs from 'node:fs';
import { EventEmitter } from 'node:events';
import { pack, unpack } from 'msgpackr';
import ignore from 'ignore';
import * as devalue from 'devalue';
import { dumps, loads } from '../src/index.ts';
import { functionTable, type FunctionCase } from './harness/function-table.ts';
import { triple, bump, Temperature, visible, Vault } from './fixtures/functions/lib/esm-util.mjs';
import * as esmUtil from './fixtures/functions/lib/esm-util.mjs';
import * as starNs from './fixtures/functions/lib/ns/star.mjs';
import * as chainNs from './fixtures/functions/lib/ns/chain.mjs';
import * as cjsNs from './fixtures/functions/lib/ns/cjs-lib.cjs';
import * as starCjsNs from './fixtures/functions/lib/ns/star-cjs.mjs';
import * as onlyDefaultNs from './fixtures/functions/lib/ns/only-default.mjs';
import * as liveExport from './fixtures/functions/lib/live-export.mjs';

const require = createRequire(import.meta.url);
const util = require('./fixtures/functions/lib/util.cjs') as {
  add: (a: number, b: number) => number;
  calls: () => number;
  Counter: new (n: number) => { n: number; next(): number };
  config: { retries: number };
};
const big = require('./fixtures/functions/lib/two-hundred.cjs') as Record<string, (x: number) => number>;

/** Fixture modules whose namespaces are built by re-exports (`export * from`, `export * as`, `export { x } from`). */
const ns = (file: string): string => new URL(`./fixtures/functions/lib/ns/${file}`, import.meta.url).href;
const starUrl = ns('star.mjs');
const starAsUrl = ns('star-as.mjs');
const cycleA = ns('cycle-a.mjs');
const cycleB = ns('cycle-b.mjs');

const cases: FunctionCase[] = [
  { name: 'builtin function by reference (fs/promises readFile)', make: () => readFile, check: (f) => f === process.getBuiltinModule('fs/promises').readFile },
  { name: 'builtin namespace captured (import * as path)', make: () => (a: string, b: string) => path.join(a, b), check: (f) => f('x', 'y') },
  { name: 'builtin namespace as a value', make: () => path, check: (ns) => [Object.prototype.toString.call(ns), ns.sep, typeof ns.join] },
  { name: 'builtin default import (CommonJS exports object) keeps identity', make: () => ({ fs }), check: (o) => o.fs === process.getBuiltinModule('fs') },
  { name: 'builtin class by reference', make: () => EventEmitter, check: (C) => C === process.getBuiltinModule('events') },
  { name: 'installed ESM package functions (msgpackr)', make: () => (v: unknown) => unpack(pack(v)), check: (f) => f({ a: [1, 'two'] }) },
  { name: 'installed ESM package function keeps identity', make: () => pack, check: async (f) => f === (await import('msgpackr')).pack },
  { name: 'installed CommonJS package (ignore)', make: () => (p: string) => ignore().add('*.log').ignores(p), check: (f) => [f('a.log'), f('a.txt')] },
  { name: 'installed package namespace (devalue)', make: () => (v: unknown) => devalue.parse(devalue.stringify(v)), check: (f) => f({ d: [1, 2] }) },
  { name: 'local CommonJS function by reference keeps identity', make: () => util.add, check: (f) => [f(2, 3), f === require('./fixtures/functions/lib/util.cjs').add] },
  { name: 'local CommonJS exports object captured', make: () => (a: number) => util.add(a, 1) + util.config.retries, check: (f) => f(1) },
  { name: 'local CommonJS class instance keeps identity by reference', make: () => new util.Counter(4), check: (c) => [c.next(), c instanceof require('./fixtures/functions/lib/util.cjs').Counter] },
  { name: 'local ES module function by reference', make: () => triple, options: { ship: false }, check: async (f) => [f(5), f === (await import('./fixtures/functions/lib/esm-util.mjs')).triple] },
  { name: 'local ES module renamed export by reference', make: () => visible, check: (f) => f() },
  { name: 'local ES module namespace captured', make: () => (x: number) => esmUtil.triple(x) + esmUtil.default().length, check: (f) => f(2) },
  { name: 'local ES module class instance', make: () => new Temperature(100), options: { ship: false }, check: async (t) => [t.f, t instanceof (await import('./fixtures/functions/lib/esm-util.mjs')).Temperature] },
  {
    // The receiver's copy of the module has not run the reassignment: by reference it would name the first function.
    name: 'a function held by an `export let` the program reassigned travels by value',
    make: () => (liveExport.useSecond(), liveExport.handler),
    check: (f) => f(1),
  },
  { name: 'local module state stays in the module (by reference)', make: () => bump, options: { ship: false }, check: async (f) => { f(); f(); return (await import('./fixtures/functions/lib/esm-util.mjs')).bump === f; } },
  { name: 'namespace of a module that re-exports with export * from, captured', make: async () => { const m = await import(starUrl); return (n: number) => m.f(n) + m.y; }, check: (f) => f(1) },
  { name: 'namespace with export * from as a value keeps identity', options: { ship: false }, make: () => import(starUrl), check: async (m) => [Object.keys(m), m === (await import(starUrl)), m.f(2)] },
  { name: 'namespace with export * as inner from', options: { ship: false }, make: () => import(starAsUrl), check: async (m) => [Object.keys(m), m.inner.f(1), m.z, m === (await import(starAsUrl))] },
  { name: 'namespace of export { f as g, default as baseDefault } from', make: () => import(ns('named-from.mjs')), check: (m) => [Object.keys(m), m.g(2), m.x, m.baseDefault] },
  { name: 'namespace of a re-export chain (export * from a module that re-exports)', make: () => import(ns('chain.mjs')), check: (m) => [Object.keys(m), m.f(1), m.h()] },
  // Both namespaces are the same bindings under the same names: either module may stand for either (content only).
  { name: 'namespaces of two modules that export * from each other (a cycle)', make: async () => ({ a: await import(cycleA), b: await import(cycleB) }), check: ({ a, b }) => [Object.keys(a), Object.keys(b), a.ca + a.cb, b.ca + b.cb] },
  { name: 'namespace where two export * give one name different bindings (left out)', make: () => import(ns('conflict.mjs')), check: (m) => [Object.keys(m), 'x' in m, m.f(1), m.h()] },
  { name: 'static import * as of a module that re-exports with export * from, captured', make: () => (n: number) => starNs.f(n) + starNs.y, check: (f) => f(1) },
  { name: 'static import * as of a module with export * from, as a value', options: { ship: false }, make: () => starNs, check: async (m) => [Object.keys(m), m === (await import(starUrl)), m.f(2)] },
  { name: 'static import * as of a re-export chain, captured', make: () => () => [chainNs.h(), chainNs.f(1), Object.keys(chainNs)], check: (f) => f() },
  // Node caches the CommonJS module while the importing graph links, before it runs (and before the index is built).
  { name: 'static import * as of a CommonJS module, captured', make: () => (n: number) => [cjsNs.twice(n), cjsNs.label, Object.keys(cjsNs)], check: (f) => f(4) },
  { name: 'static import * as of a CommonJS module, as a value', options: { ship: false }, make: () => cjsNs, check: async (m) => [m === (await import(ns('cjs-lib.cjs'))), Object.keys(m), m.twice(3)] },
  { name: 'namespace of a module that does export * from a CommonJS module (names Node found statically)', make: () => starCjsNs, check: (m) => [Object.keys(m), m.gamma(), m.own] },
  { name: 'namespace of a module that does export * from a CommonJS module, captured', make: () => () => starCjsNs.gamma() + starCjsNs.own, check: (f) => f() },
  { name: 'namespace of a module with only a default export (other loaded modules have the same names)', options: { ship: false }, make: () => onlyDefaultNs, check: async (m) => [Object.keys(m), m.default(), m === (await import(ns('only-default.mjs')))] },
  { name: 'namespace of a module that only re-exports another (same content)', make: () => import(ns('pure.mjs')), check: (m) => [Object.keys(m), m.f(1), m.y] },
  { name: 'namespace of a module that imports a binding and exports it', make: () => import(ns('import-export.mjs')), check: (m) => [Object.keys(m), m.f(2), m.q] },
  { name: 'closure capturing a 200-function local module', make: () => (x: number) => big['f199']!(x) + big['f1']!(x), check: (f) => f(1) },
  { name: 'byValue option: instance of a local class with #private fields', make: () => new Vault(7), options: { byValue: true }, check: (v) => [v.open(), v.constructor.name] },
  { name: 'byValue option keeps builtins and packages by reference', make: () => (x: unknown) => unpack(pack(x)), options: { byValue: true }, check: (f) => f([1]) },
  { name: 'byValue option pickles local functions by value', make: () => util.add, options: { byValue: true }, check: (f) => [f(4, 5), f.name] },
];

functionTable('module references', cases);

describe('module reference payloads', () => {
  it('a closure over a 200-function module stays small (the module is a reference)', async () => {
    const bytes = await dumps((x: number) => big['f5']!(x), { ship: false });
    assert.ok(bytes.length < 1500, `payload is ${bytes.length} bytes`);
  });

  it('dumpsSync/loadsSync work when every module loads synchronously; an ES module needs loads until a payload imported it', async () => {
    const { dumpsSync, loadsSync } = await import('../src/index.ts');
    const cjs = loadsSync(dumpsSync((x: number) => util.add(x, 2) + (fs.existsSync('/') ? 1 : 0))) as (x: number) => number;
    assert.equal(cjs(1), 4);
    // An ES module no payload has loaded yet needs `loads` (import() is asynchronous); once `loads` imported it, the
    // module is known and a later payload that needs it loads synchronously too.
    const file = join(import.meta.dirname, 'fixtures', 'functions', 'lib', `.sync-${process.pid}.mjs`);
    await writeFile(file, 'export const quad = (x) => x * 4;\n');
    try {
      const { quad } = (await import(file)) as { quad: (x: number) => number };
      const esmBytes = dumpsSync((x: number) => quad(x) + esmUtil.triple(x));
      assert.throws(() => loadsSync(esmBytes), (e: Error & { code?: string }) => e.code === 'ERR_MP_ASYNC_REQUIRED');
      assert.equal(((await loads(esmBytes)) as (x: number) => number)(2), 14);
      assert.equal((loadsSync(esmBytes) as (x: number) => number)(3), 21);
    } finally {
      await rm(file, { force: true });
    }
  });

  it('an instance with #private fields of a class that travels by reference fails at dumps time', async () => {
    await assert.rejects(dumps(new Vault(1)), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'ERR_MP_PRIVATE_STATE');
      assert.match(e.message, /byValue/);
      return true;
    });
  });

  it('namespace imports in plain node: a CommonJS module loaded after the first module index, a JSON module', async () => {
    const script = join(import.meta.dirname, 'fixtures', 'functions', 'namespace-imports.mjs');
    const { stdout } = await promisify(execFile)(process.execPath, [script]);
    assert.deepEqual(JSON.parse(stdout), { cjsValue: [true, 4], cjsCaptured: 13, jsonValue: [true, ['default'], 42], jsonCaptured: 42 });
  });

  it('only the variables a function uses are captured', async () => {
    const huge = 'x'.repeat(100_000);
    const small = 1;
    const f = () => small;
    void huge;
    const bytes = await dumps(f);
    assert.ok(bytes.length < 1000, `payload is ${bytes.length} bytes`);
  });

  it('a missing package and a package at another major version fail with clear errors', async () => {
    const base = await mkdtemp(join(tmpdir(), 'mp-pkg-'));
    try {
      const writePkg = async (dir: string, version: string): Promise<void> => {
        const pkg = join(dir, 'node_modules', 'mp-fake-pkg');
        await mkdir(pkg, { recursive: true });
        await writeFile(join(pkg, 'package.json'), JSON.stringify({ name: 'mp-fake-pkg', version, main: 'index.js' }));
        await writeFile(join(pkg, 'index.js'), 'exports.hello = function hello() { return "hi"; };\n');
      };
      await writePkg(join(base, 'home'), '1.2.3');
      await writePkg(join(base, 'newer'), '2.0.0');
      await writePkg(join(base, 'patch'), '1.2.4');
      await mkdir(join(base, 'empty'));
      const hello = createRequire(join(base, 'home', 'x.js'))('mp-fake-pkg').hello as () => string;
      const bytes = await dumps(() => hello());
      await assert.rejects(loads(bytes, { root: join(base, 'empty') }), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'ERR_MP_PACKAGE_MISSING');
        assert.match(e.message, /mp-fake-pkg/);
        assert.match(e.message, /1\.2\.3/);
        return true;
      });
      await assert.rejects(loads(bytes, { root: join(base, 'newer') }), (e: Error & { code?: string }) => {
        assert.equal(e.code, 'ERR_MP_PACKAGE_VERSION');
        assert.match(e.message, /2\.0\.0/);
        assert.match(e.message, /1\.2\.3/);
        return true;
      });
      const f = (await loads(bytes, { root: join(base, 'patch') })) as () => string;
      assert.equal(f(), 'hi');
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });

  it('local references resolve in a shipped tree when the ship layer sets one', async () => {
    const { Registry, defaultRegistry } = await import('../src/index.ts');
    const tree = await mkdtemp(join(tmpdir(), 'mp-tree-'));
    try {
      await mkdir(join(tree, 'test/fixtures/functions/lib'), { recursive: true });
      await writeFile(join(tree, 'test/fixtures/functions/lib/util.cjs'), 'exports.add = (a, b) => a + b + 1000;\n');
      const reg = new Registry(defaultRegistry);
      reg.registerSection({ name: 'fake-ship', rank: 10, encode: () => 1, decode: (_d, ctx) => void ctx.scratch.set(Symbol.for('modulepickle.treeDir'), tree) });
      const f = (await loads(await dumps((x: number) => util.add(x, 2) + pack(1).length, { registry: reg }), { registry: reg })) as (x: number) => number;
      assert.equal(f(1), 1003 + pack(1).length);
    } finally {
      await rm(tree, { recursive: true, force: true });
    }
  });

  it('records referenced local module files for the ship layer', async () => {
    const { defaultRegistry } = await import('../src/index.ts');
    void defaultRegistry;
    const seen: string[] = [];
    const section = {
      name: 'spy-local-modules',
      rank: 5,
      encode(ctx: { scratch: Map<unknown, unknown> }) {
        const s = ctx.scratch.get(Symbol.for('modulepickle.localModules')) as Set<string> | undefined;
        seen.push(...(s ?? []));
        return undefined;
      },
      decode() {},
    };
    const { Registry } = await import('../src/index.ts');
    const reg = new Registry(defaultRegistry);
    reg.registerSection(section);
    await dumps((x: number) => util.add(x, triple(x)), { registry: reg });
    assert.ok(seen.some((f) => f.endsWith(join('lib', 'util.cjs'))), seen.join(', '));
    assert.ok(seen.some((f) => f.endsWith(join('lib', 'esm-util.mjs'))), seen.join(', '));
  });
});

describe('worker threads', () => {
  it('dumps and loads work inside a worker thread (its own inspector session)', async () => {
    const { Worker } = await import('node:worker_threads');
    const dist = new URL('../dist/index.js', import.meta.url).href;
    const code = `
      const { dumps, loads } = await import(${JSON.stringify(dist)});
      const { parentPort } = await import('node:worker_threads');
      let n = 5; const f = (x) => x + n;
      const g = await loads(await dumps(f));
      parentPort.postMessage(g(1));`;
    const result = await new Promise((resolveResult, reject) => {
      const w = new Worker(code, { eval: true, type: 'module' } as never);
      w.once('message', (m) => {
        resolveResult(m);
        void w.terminate();
      });
      w.once('error', reject);
    });
    assert.equal(result, 6);
  });
});
