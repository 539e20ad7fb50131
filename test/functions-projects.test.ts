/*
 * Code as users run it: plain node ESM and CommonJS senders, a TypeScript project under tsx (CommonJS and ESM mode),
 * the same project compiled by tsc (ES2015: __awaiter, tslib importHelpers, __decorate) and bundled by esbuild.
 * Each sender runs in its own node process and writes payloads plus its results at home; a fresh node process
 * decodes every payload and runs the checks. Needs `npm run build` first (the senders import dist/).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { decodeInChild } from './harness/function-table.ts';

const run = promisify(execFile);
const repo = resolve('.');
const dist = join(repo, 'dist', 'index.js');
// Plain paths: tsc's CommonJS output turns import() into require(), which takes no file URLs.
const normalize = join(repo, 'test/fixtures/functions/normalize.mjs');

interface Expected {
  name: string;
  result?: unknown;
  dumpError?: string;
}

/** Runs a sender, then one fresh receiver over its payloads; returns per-case [name, home, receiver]. */
async function roundTrip(opts: { cwd: string; sender: string[]; receiverArgs?: string[]; out: string }): Promise<[string, Expected, unknown][]> {
  await mkdir(opts.out, { recursive: true });
  await run(process.execPath, [...opts.sender, opts.out, dist], {
    cwd: opts.cwd,
    env: { ...process.env, MP_DIST: dist, MP_NORMALIZE: normalize },
  });
  const expected = JSON.parse(await readFile(join(opts.out, 'expected.json'), 'utf8')) as Record<string, Expected>;
  const got = await decodeInChild(opts.out, opts.receiverArgs ?? [], opts.cwd, pathToFileURL(dist).href);
  return Object.entries(expected).map(([k, e]) => [k, e, got[k]]);
}

function checkAll(rows: [string, Expected, unknown][]): void {
  assert.ok(rows.length > 0, 'no cases ran');
  const failures: string[] = [];
  for (const [key, exp, got] of rows) {
    if (exp.dumpError) {
      failures.push(`${key} ${exp.name}: dumps failed: ${exp.dumpError}`);
      continue;
    }
    try {
      assert.deepEqual(got, exp.result);
    } catch {
      failures.push(`${key} ${exp.name}: home ${JSON.stringify(exp.result)} receiver ${JSON.stringify(got)}`);
    }
  }
  assert.deepEqual(failures, []);
}

describe('plain node senders', () => {
  let tmp = '';
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'mp-plain-'));
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });
  it('CommonJS (sloppy) sender', async () => {
    checkAll(await roundTrip({ cwd: repo, sender: ['test/fixtures/functions/sender.cjs'], out: join(tmp, 'cjs') }));
  });
  it('ES module sender', async () => {
    checkAll(await roundTrip({ cwd: repo, sender: ['test/fixtures/functions/sender.mjs'], out: join(tmp, 'esm') }));
  });
});

describe('TypeScript project', () => {
  let tmp = '';
  const project = async (name: string, type: 'module' | 'commonjs'): Promise<string> => {
    const dir = join(tmp, name);
    await cp(join(repo, 'test/fixtures/projects/ts-app'), dir, { recursive: true });
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name: `ts-app-${name}`, version: '1.0.0', private: true, type }));
    await symlink(join(repo, 'node_modules'), join(dir, 'node_modules'), 'dir');
    return dir;
  };
  before(async () => {
    tmp = await mkdtemp(join(tmpdir(), 'mp-ts-'));
  });
  after(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it('run with tsx in CommonJS mode', async () => {
    const dir = await project('tsx-cjs', 'commonjs');
    checkAll(await roundTrip({ cwd: dir, sender: ['--import', 'tsx', 'src/main.ts'], receiverArgs: ['--import', 'tsx'], out: join(dir, 'out') }));
  });

  it('run with tsx in ESM mode', async () => {
    const dir = await project('tsx-esm', 'module');
    checkAll(await roundTrip({ cwd: dir, sender: ['--import', 'tsx', 'src/main.ts'], receiverArgs: ['--import', 'tsx'], out: join(dir, 'out') }));
  });

  it('compiled by tsc (ES2015, importHelpers with tslib, experimentalDecorators), run with plain node', async () => {
    const dir = await project('tsc', 'commonjs');
    await run(process.execPath, [join(repo, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: dir });
    const emitted = await readFile(join(dir, 'build/shapes.js'), 'utf8');
    assert.match(emitted, /tslib/);
    assert.match(emitted, /__decorate/);
    assert.match(await readFile(join(dir, 'build/main.js'), 'utf8'), /__awaiter/);
    checkAll(await roundTrip({ cwd: dir, sender: ['build/main.js'], out: join(dir, 'out') }));
  });

  it('bundled by esbuild, run with plain node', async () => {
    const dir = await project('esbuild', 'commonjs');
    await build({ entryPoints: [join(dir, 'src/main.ts')], bundle: true, platform: 'node', format: 'cjs', target: 'node20', outfile: join(dir, 'bundle/main.cjs'), logLevel: 'silent' });
    checkAll(await roundTrip({ cwd: dir, sender: ['bundle/main.cjs'], out: join(dir, 'out') }));
  });
});
