/* Indexing a package's exports never runs its getters (ioredis's `Promise` getter warns when read): exports behind
 * getters are read from the getter's closure without calling it, plain exports still go by reference. */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { dumps } from '../src/index.ts';
import { functionTable, type FunctionCase } from './harness/function-table.ts';

const run = promisify(execFile);

// A project with an installed package whose exports use every getter style: a getter with side effects (counts its
// calls, warns, throws), esbuild's `() => x` and `() => from[key]`, tsc's `function () { return m_1.x; }`.
const home = realpathSync(mkdtempSync(join(tmpdir(), 'mp-getters-')));
const pkgDir = join(home, 'node_modules', 'mp-getter-pkg');
mkdirSync(pkgDir, { recursive: true });
writeFileSync(join(home, 'package.json'), JSON.stringify({ name: 'mp-getters-home', version: '1.0.0' }));
writeFileSync(join(pkgDir, 'package.json'), JSON.stringify({ name: 'mp-getter-pkg', version: '1.4.0', main: 'index.js' }));
writeFileSync(join(pkgDir, 'lib.js'), 'exports.helperObject = { tag: "lib" };\n');
writeFileSync(join(pkgDir, 'index.js'), `'use strict';
exports.plain = function plain(x) { return x * 2; };
Object.defineProperty(exports, 'loud', { enumerable: true, get() {
  globalThis.__mpGetterCalls = (globalThis.__mpGetterCalls ?? 0) + 1;
  process.emitWarning('mp-getter-pkg: loud is deprecated');
  throw new Error('the loud getter ran');
} });
// esbuild: __export(src_exports, { bundled: () => bundled }); module.exports = __toCommonJS(src_exports)
function bundled(x) { return x + 100; }
class Client { hello() { return 'hi ' + this.name; } constructor(name) { this.name = name; } }
const src_exports = {};
for (const [k, get] of Object.entries({ bundled: () => bundled, Client: () => Client })) Object.defineProperty(src_exports, k, { get, enumerable: true });
for (const key of Object.keys(src_exports)) Object.defineProperty(exports, key, { get: () => src_exports[key], enumerable: true });
// tsc: a re-export through a getter
const lib_1 = require('./lib.js');
function tscHelper(s) { return s + '!'; }
const local_1 = { tscHelper };
Object.defineProperty(exports, 'tscHelper', { enumerable: true, get: function () { return local_1.tscHelper; } });
Object.defineProperty(exports, 'libObject', { enumerable: true, get: function () { return lib_1.helperObject; } });
// Getters one level down: on an exported object, a class's statics and its prototype.
const count = () => { globalThis.__mpGetterCalls = (globalThis.__mpGetterCalls ?? 0) + 1; return 0; };
exports.nested = { get boom() { return count(); }, ok: 1 };
exports.Gadget = class Gadget { static get boom() { return count(); } get boom() { return count(); } spin() { return 'spun'; } };
`);
after(() => rmSync(home, { recursive: true, force: true }));

const pkgRequire = createRequire(join(home, 'x.js'));
const pkg = pkgRequire('mp-getter-pkg') as {
  nested: { ok: number };
  Gadget: new () => { spin(): string };
  plain: (x: number) => number;
  bundled: (x: number) => number;
  tscHelper: (s: string) => string;
  Client: new (name: string) => { hello(): string };
};
/** The package as the receiver's own copy (checks run on every side). */
const theirs = (): typeof pkg => process.getBuiltinModule('module').createRequire(`${home}/x.js`)('mp-getter-pkg');
const calls = (): number => (globalThis as { __mpGetterCalls?: number }).__mpGetterCalls ?? 0;
const opts = { options: { root: home }, loadOptions: { root: home } };

const cases: FunctionCase[] = [
  {
    name: 'a plain export goes by reference and the side-effect getter of its package never runs',
    ...opts,
    make: () => pkg.plain,
    check: (f) => [f(3), f === theirs().plain, calls()],
  },
  {
    name: "an export behind esbuild's getters goes by reference",
    ...opts,
    make: () => pkg.bundled,
    check: (f) => [f(1), f === theirs().bundled, calls()],
  },
  {
    name: "an export behind tsc's getter goes by reference",
    ...opts,
    make: () => pkg.tscHelper,
    check: (f) => [f('x'), f === theirs().tscHelper],
  },
  {
    name: 'an instance of a class exported behind a getter keeps its class by reference',
    ...opts,
    make: () => new pkg.Client('ann'),
    check: (c) => [c.hello(), c instanceof theirs().Client],
  },
  {
    name: 'getters of an exported object, of a class and of its prototype never run',
    ...opts,
    make: () => ({ nested: pkg.nested, Gadget: pkg.Gadget, spin: pkg.Gadget.prototype.spin, g: new pkg.Gadget() }),
    check: ({ nested, Gadget, spin, g }) => [nested === theirs().nested, Gadget === theirs().Gadget, spin === theirs().Gadget.prototype.spin, g.spin(), calls()],
  },
];

functionTable('package exports behind getters', cases);

describe('indexing runs no getter', () => {
  it('dumps in this process indexes the package without calling its getters', async () => {
    await dumps((x: number) => pkg.plain(x) + pkg.bundled(x), { root: home });
    assert.equal(calls(), 0);
  });

  it('a fresh node process with ioredis loaded prints no ioredis warning when a function is pickled', async () => {
    const dist = new URL('../dist/index.js', import.meta.url).href;
    const code = `
      import { createRequire } from 'node:module';
      const { dumps } = await import(${JSON.stringify(dist)});
      const require = createRequire(${JSON.stringify(resolve('package.json'))});
      const { Redis } = require('ioredis');
      const bytes = await dumps((opts) => new Redis(opts));
      process.stdout.write(String(bytes.length));`;
    const { stdout, stderr } = await run(process.execPath, ['--input-type=module', '-e', code]);
    assert.ok(Number(stdout) > 0);
    assert.doesNotMatch(stderr, /ioredis/);
  });
});
