// End to end, real processes: a project is shipped to a `node` receiver whose cwd is elsewhere and
// which cannot read the project folder. Method: a mount namespace (`unshare -m`) that covers the project
// path with an empty tmpfs; where unshare is not permitted, the project folder is renamed away while the
// receiver runs (the test name says which method ran).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildManifest, diffManifests } from '../src/index.ts';
import { makeProject, sharedNodeModules } from './fixtures/ship/make-project.ts';
import { writePayloadFile } from './fixtures/ship/payload-file.ts';

const receiver = fileURLToPath(new URL('./fixtures/ship/receiver.mjs', import.meta.url));
const canUnshare = spawnSync('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs none /mnt 2>/dev/null || mount -t tmpfs none /tmp'], { stdio: 'ignore' }).status === 0;
const method = canUnshare ? 'unshare -m + tmpfs over the project' : 'project renamed away';

/** Runs the receiver with `job`, the project hidden from it, cwd elsewhere. */
function runHidden(project: string, cwd: string, job: object): { status: number | null; stdout: string; stderr: string } {
  const args = [receiver, JSON.stringify(job)];
  if (canUnshare) {
    return spawnSync('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs none "$1" && shift && exec "$@"', 'sh', project, process.execPath, ...args], { cwd, encoding: 'utf8' });
  }
  const away = `${project}.away`;
  renameSync(project, away);
  try {
    return spawnSync(process.execPath, args, { cwd, encoding: 'utf8' });
  } finally {
    renameSync(away, project);
  }
}

interface Out {
  cwd: string;
  projectEntries: string[] | string;
  steps: { id: string; fetched: number; fetchCalls: number; created: boolean; result: Record<string, unknown>; version: string }[];
  after: { version: string; lazy: string }[];
  typeScriptLoader: boolean;
}

test(`a receiver that cannot read the project runs its code, then an edited version beside the old one (${method})`, async () => {
  const project = makeProject();
  const work = mkdtempSync(join(tmpdir(), 'mp-e2e-'));
  const cwd = mkdtempSync(join(tmpdir(), 'mp-e2e-cwd-'));
  try {
    const cacheDir = join(work, 'client-cache');
    const extraFiles = [join(project, 'dist-ignored/loaded.js')];
    const v1 = buildManifest({ from: project, cacheDir, extraFiles });
    const p1 = await writePayloadFile(join(work, 'p1.json'), v1);
    writeFileSync(join(project, 'src/main.ts'), readFileSync(join(project, 'src/main.ts'), 'utf8').replace("'main-v1'", "'main-v2'"));
    const v2 = buildManifest({ from: project, cacheDir, extraFiles });
    assert.deepEqual(diffManifests(v1.manifest, v2.manifest), { added: [], removed: [], changed: ['src/main.ts'] });
    const p2 = await writePayloadFile(join(work, 'p2.json'), v2);
    const job = {
      cacheDir: join(work, 'receiver-cache'),
      nodeModules: sharedNodeModules,
      project,
      steps: [
        { payload: p1, entry: 'src/main.ts', call: 'run', arg: 4 },
        { payload: p2, entry: 'src/main.ts', call: 'run', arg: 5 },
      ],
    };
    const r = runHidden(project, cwd, job);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Out;
    assert.equal(out.cwd, cwd);
    assert.ok(out.projectEntries === 'ENOENT' || (Array.isArray(out.projectEntries) && out.projectEntries.length === 0), `project visible: ${JSON.stringify(out.projectEntries)}`);
    const [s1, s2] = out.steps;
    assert.deepEqual(s1!.result, { sum: 7, twice: 8, greet: 'hello world', shared: 'shared-v1', nodes: 1 });
    assert.equal(s1!.id, v1.id);
    assert.equal(s1!.version, 'main-v1');
    assert.equal(s2!.id, v2.id);
    assert.equal(s2!.version, 'main-v2');
    // the receiver holding version 1 fetched exactly one blob for version 2 (plus the manifest it came with)
    assert.equal(s2!.fetched, 1);
    assert.equal(s2!.fetchCalls, 1);
    assert.deepEqual(out.after, [
      { version: 'main-v1', lazy: 'dyn-v1' },
      { version: 'main-v2', lazy: 'dyn-v1' },
    ]);
    assert.equal(out.typeScriptLoader, true, 'tsx was registered for the .ts modules');
  } finally {
    rmSync(project, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
    rmSync(cwd, { recursive: true, force: true });
  }
});

test(`a compiled (JavaScript only) tree loads without registering a TypeScript loader (${method})`, async () => {
  const project = makeProject();
  const work = mkdtempSync(join(tmpdir(), 'mp-e2e-'));
  try {
    const build = buildManifest({ from: project, cacheDir: join(work, 'c'), exclude: ['*.ts', 'tsconfig.json'] });
    const payload = await writePayloadFile(join(work, 'p.json'), build);
    const job = { cacheDir: join(work, 'r'), nodeModules: sharedNodeModules, project, steps: [{ payload, entry: 'src/legacy.cjs', call: 'greet', arg: 'js' }] };
    const r = runHidden(project, work, job);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Out;
    assert.equal(out.steps[0]!.result as unknown, 'hello js');
    assert.equal(out.typeScriptLoader, false);
  } finally {
    rmSync(project, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  }
});
