/*
 * The package as users get it. `npm pack` once, installed once (a real install, not a link to this tree) into a
 * fresh CommonJS project; each consumer project of test/fixtures/consumers/ is copied next to it with that
 * project's node_modules. Then: the consumers run for real (pool and stdio workers, a closure over a local
 * module, an edit between two calls), their types check under every module mode, the bin and the worker entry
 * come from the tarball, and a Node without require(esm) gets a clear error. Needs `npm run build` first.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, realpathSync } from 'node:fs';
import { cp, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const repo = fileURLToPath(new URL('..', import.meta.url));
const fixtures = join(repo, 'test/fixtures/consumers');
const tsc = join(repo, 'node_modules/typescript/bin/tsc');
const node = process.execPath;

// Child npm commands must not inherit this run's npm_* variables (`npm test` sets the prefix and config to this repo).
const npmEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
const installedVersion = (name: string): string => (JSON.parse(readFileSync(join(repo, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;

let tmp = '';
let app = ''; // the fresh CommonJS project the tarball is installed into
let cacheDir = '';
let packed: string[] = [];

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = { ...process.env, MODULEPICKLE_CACHE: cacheDir }) {
  return exec(command, args, { cwd, env, timeout: 240_000, maxBuffer: 16 << 20 });
}

/** A copy of a consumer project that uses the installed package (its node_modules is the fresh project's). */
async function project(fixture: string, as: string): Promise<string> {
  const dir = join(tmp, as);
  await cp(join(fixtures, fixture), dir, { recursive: true });
  await symlink(join(app, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return dir;
}

before(async () => {
  assert.ok(existsSync(join(repo, 'dist/index.cjs')), "dist/ is missing: run 'npm run build' first");
  tmp = realpathSync(await mkdtemp(join(tmpdir(), 'mp-consumers-')));
  cacheDir = join(tmp, 'cache');
  // dist/ is built by `npm test`; --ignore-scripts skips prepack's second build.
  const { stdout } = await exec('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: repo, env: npmEnv });
  const [info] = JSON.parse(stdout) as { filename: string; files: { path: string }[] }[];
  assert.ok(info, 'npm pack printed no result');
  packed = info.files.map((f) => f.path);
  app = join(tmp, 'app');
  await mkdir(app);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'fresh-app', version: '1.0.0', private: true }, null, 2));
  // What a user adds next to it for TypeScript; the cache of this repo's `npm ci` answers most of it offline.
  const deps = [join(tmp, info.filename), `tsx@${installedVersion('tsx')}`, `@types/node@${installedVersion('@types/node')}`];
  await exec('npm', ['install', ...deps, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app, env: npmEnv, timeout: 240_000 });
});

after(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('the tarball', () => {
  it('holds the built package (both entries and their types, the worker entry, the bin) and none of the source tree', () => {
    for (const f of ['package.json', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/index.cjs', 'dist/index.d.cts', 'dist/entry/worker.js', 'dist/cli/main.js']) {
      assert.ok(packed.includes(f), `${f} is not in the tarball`);
    }
    assert.deepEqual(packed.filter((f) => /^(src|test|bench|scripts|examples|node_modules)\//.test(f)), []);
  });

  it('is installed as files, not as a link to this tree', () => {
    const dir = join(app, 'node_modules/modulepickle');
    assert.equal(lstatSync(dir).isSymbolicLink(), false);
    assert.ok(!realpathSync(dir).startsWith(repo), realpathSync(dir));
  });

  it('the bin runs from the install', async () => {
    const { stdout } = await run(join(app, 'node_modules/.bin/modulepickle'), ['--version'], app);
    assert.equal(stdout.trim(), (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { version: string }).version);
  });
});

interface Report {
  entry: string;
  runs: Record<string, number[]>;
  workerReducer: Record<string, boolean>;
  identity: Record<string, boolean>;
}

// Each main runs `(x) => score(x) + factor` (score = x * WEIGHT + 100, factor = 10) at WEIGHT 2, edits the local
// module to WEIGHT 3 and runs it again, on a pool and on a stdio worker started through the installed bin. Then
// `() => new Point(1, 2)`: the worker loads the user's point module, which registers a reducer through its own
// require/import of modulepickle; the result comes back restored by it only if that is the worker's instance.
const consumers: { name: string; fixture: string; build?: string[]; command: string[]; identity: string[]; inspect?: boolean }[] = [
  {
    name: 'plain CommonJS (.js, no "type"): require(), local modules that require() each other',
    fixture: 'cjs',
    command: [node, 'main.js'],
    identity: ['sameNamespace', 'sameRegistry', 'sameReducer', 'roundTrip'],
    inspect: true,
  },
  { name: 'TypeScript in a "type": "commonjs" package, under tsx', fixture: 'ts-cjs', command: ['node_modules/.bin/tsx', 'src/main.ts'], identity: ['registered', 'sameRegistry'] },
  {
    name: 'the same compiled by tsc (module commonjs, moduleResolution node10), under node',
    fixture: 'ts-cjs',
    build: [node, tsc, '-p', '.'],
    command: [node, 'dist/main.js'],
    identity: ['registered', 'sameRegistry'],
  },
  { name: 'ESM ("type": "module"), then require() of the same package', fixture: 'esm', command: [node, 'main.js'], identity: ['sameNamespace', 'sameRegistry', 'sameReducer', 'roundTrip'] },
];

describe('consumer projects run through the pool and stdio workers, with an edit between two calls', () => {
  for (const [i, c] of consumers.entries()) {
    it(c.name, async () => {
      const dir = await project(c.fixture, `run-${i}-${c.fixture}`);
      if (c.build) await run(c.build[0]!, c.build.slice(1), dir);
      const { stdout } = await run(c.command[0]!, c.command.slice(1), dir);
      const report = JSON.parse(stdout.trim().split('\n').at(-1)!) as Report;
      assert.deepEqual(report.runs, { pool: [112, 113], stdio: [112, 113] }, 'the second call must run the edited module');
      assert.deepEqual(report.workerReducer, { pool: true, stdio: true }, "a reducer the user's module registered on the worker must be the worker's");
      assert.equal(report.entry, join(app, 'node_modules/modulepickle/dist/entry/worker.js'), 'the pool spawns the installed worker entry');
      assert.deepEqual(report.identity, Object.fromEntries(c.identity.map((k) => [k, true])));
      if (c.inspect) {
        const { stdout: text } = await run(join(dir, 'node_modules/.bin/modulepickle'), ['inspect', 'payload.bin'], dir);
        assert.match(text, /lib\/score\.js \(local, shipped\)/);
      }
    });
  }
});

// tsc over the files of test/fixtures/consumers/types. Each file has a @ts-expect-error that only holds when the
// package's real types were found. One mode runs with skipLibCheck off (node16 reads both entries' types), which
// checks the package's declarations themselves; the diagnostics @types/node 20 gives under this TypeScript in any
// project are not the package's and are left out. The others run as most projects do, with skipLibCheck.
const typeChecks: { name: string; module: string; moduleResolution: string; files: string[]; uses: string[]; libCheck?: boolean }[] = [
  { name: 'module commonjs + moduleResolution node10', module: 'commonjs', moduleResolution: 'node10', files: ['import-cjs.ts', 'require-cjs.cts'], uses: ['index.d.ts'] },
  { name: 'module node16: CommonJS (.ts, .cts) and ES module (.mts) files', module: 'node16', moduleResolution: 'node16', files: ['import-cjs.ts', 'require-cjs.cts', 'import-esm.mts'], uses: ['index.d.cts', 'index.d.ts'], libCheck: true },
  { name: 'module nodenext: CommonJS and ES module files', module: 'nodenext', moduleResolution: 'nodenext', files: ['import-cjs.ts', 'require-cjs.cts', 'import-esm.mts'], uses: ['index.d.cts', 'index.d.ts'] },
  { name: 'module esnext + moduleResolution bundler', module: 'esnext', moduleResolution: 'bundler', files: ['import-cjs.ts', 'import-esm.mts'], uses: ['index.d.ts'] },
];

describe('types resolve for each kind of TypeScript consumer (tsc --noEmit)', () => {
  let dir = '';
  before(async () => {
    dir = await project('types', 'types');
  });
  for (const [i, t] of typeChecks.entries()) {
    it(t.name, async () => {
      const config = `tsconfig.${i}.json`;
      const compilerOptions = { module: t.module, moduleResolution: t.moduleResolution, target: 'es2022', strict: true, noEmit: true, types: ['node'], skipLibCheck: !t.libCheck };
      await writeFile(join(dir, config), JSON.stringify({ compilerOptions, files: t.files }, null, 2));
      const out = await run(node, [tsc, '-p', config, '--listFiles'], dir).then(
        (r) => r.stdout,
        (err: { stdout?: string }) => err.stdout ?? String(err),
      );
      const lines = out.split('\n').filter((l) => l !== '');
      const errors = lines.filter((l) => /error TS\d+/.test(l) && !l.includes('/@types/node/'));
      assert.deepEqual(errors, []);
      const used = lines.filter((l) => l.includes('/node_modules/modulepickle/dist/index.')).map((l) => l.slice(l.lastIndexOf('/') + 1));
      assert.deepEqual(used.sort(), [...t.uses].sort(), 'the package entry types tsc read');
    });
  }
});

describe('a Node without require(esm)', () => {
  const engines = (JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { engines: { node: string } }).engines.node;
  const cases = [
    { name: 'turned off (--no-experimental-require-module): a clear error naming the versions', args: ['--no-experimental-require-module', '-e', "require('modulepickle')"] },
    // Node before 20.19 has no process.features.require_module: the same check, with the getter removed.
    { name: 'absent (older than 20.19): the same error', args: ['-e', "Object.defineProperty(process.features, 'require_module', { value: undefined }); require('modulepickle')"] },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      await assert.rejects(run(node, c.args, app), (err: { stderr: string }) => {
        assert.match(err.stderr, /ERR_MP_NODE_VERSION/);
        assert.ok(err.stderr.includes(`(${engines})`), err.stderr);
        assert.doesNotMatch(err.stderr, /ERR_PACKAGE_PATH_NOT_EXPORTED|ERR_REQUIRE_ESM/);
        return true;
      });
    });
  }

  it('import() still works there', async () => {
    const { stdout } = await run(node, ['--no-experimental-require-module', '--input-type=module', '-e', "const m = await import('modulepickle'); console.log(typeof m.createPool)"], app);
    assert.equal(stdout.trim(), 'function');
  });
});
