// Issue 12: the cache folder, wherever it is, never ships. The scenario runs as a user would, in real child
// processes: a generated project of 2,000 small modules, a script (cwd = the project) that calls a local function
// twice, edits its module and calls again, through each executor (pool, stdio, queue), with the cache (which the
// workers use concurrently: they inherit the setting) inside the project, reached through symlinks, and in the
// default place under a project root that is the home folder. Then the walk-level rules, and `modulepickle inspect`.
// Needs the dist/ build (`npm run build`) and redis-server.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { walkProject } from '../src/ship/walk.ts';
import { ensureCacheDir } from '../src/runtime/cache-dir.ts';
import { startRedis, type TestRedis } from './fixtures/queue/redis.ts';
import { startWorkerProc, type WorkerProc } from './fixtures/queue/procs.ts';

const repo = fileURLToPath(new URL('..', import.meta.url));
const cli = join(repo, 'dist', 'cli', 'main.js');
const script = fileURLToPath(new URL('./fixtures/cache-in-project/calls.mjs', import.meta.url));
const KEY = 'cache-in-project-key-0123456789';
const FILES = 2000;

let work = '';
let redis: TestRedis;
before(async () => {
  work = realpathSync(mkdtempSync(join(tmpdir(), 'mp-cache-in-project-')));
  redis = await startRedis();
});
after(async () => {
  await redis?.stop();
  rmSync(work, { recursive: true, force: true });
});

/** The project: package.json ("type": "module"), src/v.mjs, src/gen/f1..f2000.mjs, the script. Returns what must ship. */
function makeProject(dir: string): string[] {
  mkdirSync(join(dir, 'src', 'gen'), { recursive: true });
  mkdirSync(join(dir, 'node_modules'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'cache-in-project', private: true, type: 'module' }));
  writeFileSync(join(dir, 'src', 'v.mjs'), 'export function v() {\n  return 1;\n}\n');
  const paths = ['calls.mjs', 'package.json', 'src/v.mjs'];
  for (let i = 1; i <= FILES; i++) {
    writeFileSync(join(dir, 'src', 'gen', `f${i}.mjs`), `export const f${i} = ${i};\n`);
    paths.push(`src/gen/f${i}.mjs`);
  }
  copyFileSync(script, join(dir, 'calls.mjs'));
  symlinkSync(repo, join(dir, 'node_modules', 'modulepickle'));
  return paths.sort();
}

/** Where the project and its cache are, and the environment the script (and every worker) runs with. */
interface Layout {
  readonly project: string;
  /** Real path of the cache folder, inside the project. */
  readonly cache: string;
  readonly env: NodeJS.ProcessEnv;
  /** What must ship. */
  readonly paths: string[];
}

const layouts: { name: string; make: (base: string) => Layout }[] = [
  {
    name: 'the cache inside the project (MODULEPICKLE_CACHE=./.c)',
    make: (base) => {
      const project = join(base, 'p');
      return { project, cache: join(project, '.c'), env: { MODULEPICKLE_CACHE: './.c' }, paths: makeProject(project) };
    },
  },
  {
    name: 'the cache reached through symlinks (one outside, one inside the project)',
    make: (base) => {
      const project = join(base, 'p');
      const paths = makeProject(project);
      mkdirSync(join(project, 'var', 'store'), { recursive: true });
      symlinkSync('var/store', join(project, 'cache-link'));
      mkdirSync(join(base, 'elsewhere'));
      symlinkSync(join(project, 'cache-link'), join(base, 'elsewhere', 'mp-cache'));
      return { project, cache: join(project, 'var', 'store'), env: { MODULEPICKLE_CACHE: join(base, 'elsewhere', 'mp-cache') }, paths };
    },
  },
  {
    name: 'the project root is a home folder holding the default cache',
    make: (base) => {
      const home = join(base, 'home');
      return { project: home, cache: join(home, '.cache', 'modulepickle'), env: { HOME: home, MODULEPICKLE_CACHE: undefined, XDG_CACHE_HOME: undefined }, paths: makeProject(home) };
    },
  },
];

interface Outcome {
  readonly results: unknown[];
  readonly shipped: string[][];
}

function runScript(cwd: string, env: NodeJS.ProcessEnv): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['calls.mjs'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => {
      const last = out.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last) as Outcome);
      } catch {
        reject(new Error(`the script exited with ${code} and no result:\n${out.slice(-2000)}\n${err.slice(-4000)}`));
      }
    });
  });
}

function childEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, MODULEPICKLE_NO_GC: '1' };
  delete env.MODULEPICKLE_CACHE;
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

const executors: { name: string; start: (layout: Layout, id: string) => Promise<{ env: NodeJS.ProcessEnv; stop: () => Promise<void> }> }[] = [
  { name: 'pool', start: async () => ({ env: { MP_EXECUTOR: 'pool' }, stop: async () => {} }) },
  { name: 'stdio', start: async () => ({ env: { MP_EXECUTOR: 'stdio', MP_CLI: cli }, stop: async () => {} }) },
  {
    name: 'queue',
    start: async (layout, id) => {
      // The queue worker runs in the project folder with the same cache setting: it writes into that cache while
      // the client walks the project.
      const queue = `cip-${id}`;
      const w: WorkerProc = await startWorkerProc([cli, 'worker', '--redis', redis.url, '--queue', queue, '--concurrency', '1'], {
        cwd: layout.project,
        env: childEnv({ ...layout.env, MODULEPICKLE_KEY: KEY }),
        ready: /ready on queue/,
      });
      return { env: { MP_EXECUTOR: 'queue', MP_REDIS: redis.url, MP_QUEUE: queue, MP_KEY: KEY }, stop: () => w.stop() };
    },
  },
];

describe(`a cache folder in the project never ships (${FILES} files, two calls, an edit, a third call)`, { timeout: 300_000 }, () => {
  let n = 0;
  for (const layout of layouts) {
    for (const executor of executors) {
      test(`${executor.name}: ${layout.name}`, async () => {
        const base = join(work, `case-${++n}`);
        mkdirSync(base);
        const l = layout.make(base);
        const ex = await executor.start(l, String(n));
        let out: Outcome;
        try {
          out = await runScript(l.project, childEnv({ ...l.env, ...ex.env }));
        } finally {
          await ex.stop();
        }
        assert.deepEqual(out.results, [1, 1, 2], JSON.stringify(out.results));
        assert.ok(existsSync(join(l.cache, 'CACHEDIR.TAG')) && existsSync(join(l.cache, 'blobs')), `the cache was used, in the project: ${l.cache}`);
        for (const [i, paths] of out.shipped.entries()) assert.deepEqual([...paths].sort(), l.paths, `call ${i + 1} shipped exactly the project's files`);
      });
    }
  }
});

// The rules below the scenario: every way a library-owned folder could slip into a walk.
const rules: { name: string; setup: (root: string) => { cacheDir?: string; extraFiles?: string[]; include?: string[] }; skipped: Record<string, RegExp> }[] = [
  {
    name: 'the configured cache, untagged, is excluded by its real path through a symlink',
    setup: (root) => {
      mkdirSync(join(root, 'store', 'blobs'), { recursive: true });
      writeFileSync(join(root, 'store', 'blobs', 'x'), 'x');
      symlinkSync(join(root, 'store'), join(root, '..', 'outside-link'));
      return { cacheDir: join(root, '..', 'outside-link') };
    },
    skipped: { store: /never ships: modulepickle's cache folder \(the cacheDir option, '.*outside-link' resolved\)/ },
  },
  {
    name: "another process's cache (tagged, not configured here) is excluded by its CACHEDIR.TAG",
    setup: (root) => {
      ensureCacheDir(join(root, 'deep', 'other-cache'));
      writeFileSync(join(root, 'deep', 'other-cache', 'lock'), '123');
      return {};
    },
    skipped: { 'deep/other-cache': /never ships: a cache folder \(it holds a CACHEDIR\.TAG/ },
  },
  {
    name: 'include patterns do not pull a cache back in',
    setup: (root) => {
      ensureCacheDir(join(root, '.c'));
      writeFileSync(join(root, '.c', 'lock'), '1');
      return { include: ['.c/**'], cacheDir: join(root, '.c') };
    },
    skipped: { '.c': /cacheDir option/ },
  },
  {
    name: 'a loaded module inside the cache (a materialized tree) does not ship as an extra file',
    setup: (root) => {
      ensureCacheDir(join(root, '.c'));
      mkdirSync(join(root, '.c', 'ns', 'k', 'trees', 'id', 'tree'), { recursive: true });
      writeFileSync(join(root, '.c', 'ns', 'k', 'trees', 'id', 'tree', 'm.cjs'), 'module.exports = 1;');
      writeFileSync(join(root, '.gitignore'), '.c\n');
      return { extraFiles: [join(root, '.c', 'ns', 'k', 'trees', 'id', 'tree', 'm.cjs')] };
    },
    skipped: { '.c/ns/k/trees/id/tree/m.cjs': /never ships: inside '\.c', a cache folder/ },
  },
  {
    name: 'a symlink into the cache is left out (it would dangle on the receiver)',
    setup: (root) => {
      ensureCacheDir(join(root, 'c'));
      symlinkSync('c', join(root, 'to-cache'));
      return {};
    },
    skipped: { c: /CACHEDIR\.TAG/, 'to-cache': /a symlink into 'c'/ },
  },
];

describe('walk rules for library-owned folders', () => {
  for (const [i, rule] of rules.entries()) {
    test(rule.name, () => {
      const root = join(work, `rule-${i}`, 'p');
      mkdirSync(join(root, 'src'), { recursive: true });
      writeFileSync(join(root, 'package.json'), '{}');
      writeFileSync(join(root, 'src', 'a.js'), 'export const a = 1;');
      const opts = rule.setup(root);
      const walked = walkProject(root, opts);
      const rels = walked.entries.map((e) => e.rel).filter((r) => r !== '.gitignore');
      assert.deepEqual(rels, ['package.json', 'src/a.js']);
      for (const [rel, reason] of Object.entries(rule.skipped)) {
        const s = walked.skipped.find((x) => x.rel === rel);
        assert.ok(s, `${rel} is listed as skipped: ${JSON.stringify(walked.skipped)}`);
        assert.match(s.reason, reason);
      }
    });
  }
});

test('modulepickle inspect <project> shows the cache excluded and why', () => {
  const project = join(work, 'inspect', 'p');
  makeProject(project);
  ensureCacheDir(join(project, '.c'));
  mkdirSync(join(project, '.c', 'blobs'));
  const r = spawnSync(process.execPath, [cli, 'inspect', project], { encoding: 'utf8', env: childEnv({ MODULEPICKLE_CACHE: join(project, '.c') }) });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`ships: ${FILES + 3} files`));
  assert.match(r.stdout, /never ships, on this machine:\n {2}- .*\/p\/\.c: modulepickle's cache folder \(\$MODULEPICKLE_CACHE\) \[inside the project\]/);
  assert.match(r.stdout, /left out \(1\):\n {2}- \.c: never ships: modulepickle's cache folder/);
  const json = JSON.parse(spawnSync(process.execPath, [cli, 'inspect', project, '--json'], { encoding: 'utf8', env: childEnv({ MODULEPICKLE_CACHE: join(project, '.c') }) }).stdout) as { excluded: { rel: string }[]; files: number };
  assert.deepEqual(json.excluded.map((e) => e.rel), ['.c']);
  assert.equal(json.files, FILES + 3);
});
