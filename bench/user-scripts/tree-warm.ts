// Runs inside a generated user project (bench/user-project.ts), under tsx or compiled by tsc: what the project tree
// costs a call. The tree alone (the watched build vs the full check) and end to end through a process pool (a new
// inline closure per call, watched vs `ship: { watch: false }`), unchanged and right after a one-file edit (no sleep).
// Prints one JSON line.
import { writeFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildManifest, createPool, watchedBuild, type Executor } from 'modulepickle';
import { v } from './lib/v.js';
import { timeUs } from './measure.js';

const MODE = process.env['BENCH_MODE'] ?? 'tsx';
const root = process.cwd();
const tmp = mkdtempSync(join(tmpdir(), 'mp-tree-bench-'));
const cacheDir = join(tmp, 'cache');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
let version = 0;
const edit = (): number => {
  version++;
  if (MODE === 'tsx') writeFileSync('src/lib/v.ts', `export const bump: number = ${version};\nexport function v(x: number): number {\n  return x + bump;\n}\n`);
  else writeFileSync('dist/lib/v.js', `export const bump = ${version};\nexport function v(x) {\n    return x + bump;\n}\n`);
  return version;
};
const loaded = [join(root, MODE === 'tsx' ? 'src/lib/v.ts' : 'dist/lib/v.js')];

// The tree alone.
const opts = { root, cacheDir, extraFiles: loaded };
await watchedBuild(opts);
await sleep(200);
await watchedBuild(opts);
const tree = {
  watchedUnchangedUs: await timeUs(300, () => watchedBuild(opts)),
  fullUnchangedUs: await timeUs(15, () => buildManifest(opts)),
  watchedEditUs: await timeUs(15, () => (edit(), watchedBuild(opts))),
  fullEditUs: await timeUs(15, () => (edit(), buildManifest(opts))),
};

// End to end: a pool, inline closures.
async function endToEnd(watch: boolean): Promise<Record<string, number>> {
  const pool: Executor = createPool({ workers: 2, cacheDir: join(tmp, `pool-${watch}`), onLog: () => {}, dumpsOptions: { ship: { watch } } });
  await pool.ready();
  for (let i = 0; i < 30; i++) await pool.run(() => v(i));
  const trivialUs = await timeUs(300, () => pool.run(() => 1));
  const localUs = await timeUs(watch ? 300 : 40, (i) => pool.run(() => v(i)));
  const blobs = pool.stats.blobsServed;
  const manifests = pool.stats.manifestsServed;
  let stale = 0;
  const rounds = 20;
  const editUs = await timeUs(rounds, async () => {
    const n = edit();
    if ((await pool.run(() => v(0))) !== n) stale++;
  });
  const out = { trivialUs, localUs, editUs, blobsPerEdit: (pool.stats.blobsServed - blobs) / rounds, manifestsPerEdit: (pool.stats.manifestsServed - manifests) / rounds, stale };
  await pool.close();
  return out;
}
const watched = await endToEnd(true);
const full = await endToEnd(false);
version = -1;
edit();
rmSync(tmp, { recursive: true, force: true });
console.log(JSON.stringify({ shipped: buildManifest(opts).manifest.entries.length, tree, watched, full }));
