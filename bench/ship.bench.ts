// Ship benchmark: a generated project of 20,000 files (~200 MB) in /tmp.
// Client: cold manifest build, warm builds (no change, one-file edit). Receiver: materializing a new version
// that differs by one file. Side by side: `tar -c | sha256sum` and git (`git hash-object`, `git add`,
// `git status`, `git ls-files -s`) on the same tree.
// Then the watched tree from generated user projects of 2,000 and 20,000 files (BENCH_PROJECT_SIZES), under tsx and
// compiled: the tree alone and end to end through a pool, watched vs the full check. BENCH_SHIP_PART=build|tree runs one.
// Run: npm run build && node --import tsx bench/ship.bench.ts [files] [MB]
import { execSync, spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ProjectBlobSource, StatCache, blobHashes, buildManifest, diffManifests, materializeTree, type ShipBuild,
} from '../src/index.ts';
import { makeUserProject, runUserScript, type RunMode } from './user-project.ts';

const FILES = Number(process.argv[2] ?? 20_000);
const MB = Number(process.argv[3] ?? 200);
const PER_DIR = 100;
const work = mkdtempSync(join(tmpdir(), 'mp-ship-bench-'));
const project = join(work, 'project');
const clientCache = join(work, 'client-cache');
const receiverCache = join(work, 'receiver-cache');

function generate(): void {
  const avg = Math.floor((MB * 1024 * 1024) / FILES);
  let seed = 12345;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  const block = Buffer.alloc(avg * 2);
  for (let i = 0; i < block.length; i++) block[i] = 97 + (rand() % 26);
  mkdirSync(project, { recursive: true });
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'bench-project', type: 'module' }));
  writeFileSync(join(project, '.gitignore'), 'node_modules/\n*.log\n');
  for (let i = 0; i < FILES; i++) {
    const dir = join(project, 'src', `d${Math.floor(i / PER_DIR)}`);
    if (i % PER_DIR === 0) mkdirSync(dir, { recursive: true });
    const size = Math.floor(avg / 2) + (rand() % avg);
    const off = rand() % avg;
    const body = Buffer.concat([Buffer.from(`// file ${i}\n`), block.subarray(off, off + size)]);
    writeFileSync(join(dir, `m${i}.js`), body);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
/** "median (min)": the min shows the cost with the least interference from other load on the machine. */
const mm = (xs: number[]) => `${median(xs).toFixed(1)} (${Math.min(...xs).toFixed(1)})`;
function time<T>(fn: () => T): [number, T] {
  const t = performance.now();
  const r = fn();
  return [performance.now() - t, r];
}
async function timeAsync<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t = performance.now();
  const r = await fn();
  return [performance.now() - t, r];
}
const sh = (cmd: string) => time(() => execSync(cmd, { cwd: project, stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 28, shell: '/bin/bash' }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const opts = { from: project, cacheDir: clientCache, maxBytes: 1024 * 1024 * 1024 };
let edits = 0;
function editOne(): string {
  const rel = `src/d${(edits * 37) % (FILES / PER_DIR)}/m${((edits * 37) % (FILES / PER_DIR)) * PER_DIR + 1}.js`;
  writeFileSync(join(project, rel), `// edit ${edits++}\nexport const x = ${Date.now()};\n`);
  return rel;
}

async function main(): Promise<void> {
  const [genMs] = time(generate);
  const rows: string[][] = [];
  const [coldMs, cold] = time(() => buildManifest(opts));
  await sleep(120);
  buildManifest(opts); // settles files that were racily clean during the cold build
  const warm: number[] = [];
  for (let i = 0; i < 15; i++) warm.push(time(() => buildManifest(opts))[0]);
  // the floor under a warm build on this machine, in this run: one lstat per file, nothing else
  const absPaths = cold.manifest.entries.map((e) => join(project, e.path));
  const floor: number[] = [];
  for (let i = 0; i < 15; i++) floor.push(time(() => absPaths.forEach((p) => lstatSync(p)))[0]);
  const fromDisk: number[] = [];
  for (let i = 0; i < 3; i++) {
    StatCache.clearMemory();
    fromDisk.push(time(() => buildManifest(opts))[0]);
  }
  // one-file edits: exactly one new blob each
  const editMs: number[] = [];
  let prev: ShipBuild = buildManifest(opts);
  for (let i = 0; i < 7; i++) {
    const rel = editOne();
    await sleep(60);
    const [ms, b] = time(() => buildManifest(opts));
    const d = diffManifests(prev.manifest, b.manifest);
    const old = new Set(blobHashes(prev.manifest));
    const fresh = blobHashes(b.manifest).filter((h) => !old.has(h));
    if (d.changed.join() !== rel || d.added.length || d.removed.length || fresh.length !== 1) throw new Error(`edit ${rel}: ${JSON.stringify(d)} new blobs ${fresh.length}`);
    editMs.push(ms);
    prev = b;
  }
  // receiver: first version cold, then new versions that differ by one file
  const [recvColdMs] = await timeAsync(() => materializeTree(prev.text, { cacheDir: receiverCache, blobSource: new ProjectBlobSource(prev), nodeModules: false }));
  const recvMs: number[] = [];
  const cpMs: number[] = [];
  for (let i = 0; i < 7; i++) {
    editOne();
    await sleep(60);
    const b = buildManifest(opts);
    const [ms, t] = await timeAsync(() => materializeTree(b.text, { cacheDir: receiverCache, blobSource: new ProjectBlobSource(b), nodeModules: false }));
    if (t.fetched !== 1) throw new Error(`fetched ${t.fetched}`);
    recvMs.push(ms);
    // the same number of hardlinks made by a C tool, for scale
    cpMs.push(time(() => execSync(`cp -al ${t.dir} ${join(work, `cp-al-${i}`)}`))[0]);
  }
  // comparators on the same tree
  const [tarMs] = sh('tar -cf - -C . . | sha256sum');
  const list = cold.manifest.entries.map((e) => e.path).join('\n');
  writeFileSync(join(work, 'list.txt'), list);
  const [hashObjMs] = sh(`git hash-object --stdin-paths < ${join(work, 'list.txt')} > /dev/null`);
  sh('git init -q .');
  const [gitAddMs] = sh('git add -A');
  sh('git status --porcelain'); // refresh the index stat data once
  const [gitStatusMs] = sh('git status --porcelain');
  const [lsFilesMs] = sh('git ls-files -s');
  const [lsFilesHashMs] = sh(`git ls-files -s > /dev/null && git hash-object --stdin-paths < ${join(work, 'list.txt')} > /dev/null`);
  const f = (n: number) => n.toFixed(1);
  const ratio = (a: number, b: number) => `${(b / a).toFixed(1)}×`;
  rows.push(['cold manifest build (walk + sha256 of everything)', f(coldMs), `tar -c \\| sha256sum: ${f(tarMs)}`, ratio(coldMs, tarMs)]);
  rows.push(['', '', `git hash-object --stdin-paths: ${f(hashObjMs)}`, ratio(coldMs, hashObjMs)]);
  rows.push(['', '', `git add -A (new repo): ${f(gitAddMs)}`, ratio(coldMs, gitAddMs)]);
  rows.push(['', '', `git ls-files -s + git hash-object: ${f(lsFilesHashMs)}`, ratio(coldMs, lsFilesHashMs)]);
  rows.push(['warm build, no change (goal < 100 ms)', mm(warm), `git status --porcelain: ${f(gitStatusMs)}`, ratio(median(warm), gitStatusMs)]);
  rows.push(['', '', `git ls-files -s: ${f(lsFilesMs)}`, ratio(median(warm), lsFilesMs)]);
  rows.push(['', '', `floor: lstatSync of every file (no other work): ${mm(floor)}`, ratio(median(warm), median(floor))]);
  rows.push(['warm build, no change, stat cache read from disk (a new process)', f(median(fromDisk)), '', '']);
  rows.push(['warm build after a one-file edit (goal < 150 ms; 1 new blob)', mm(editMs), `tar -c \\| sha256sum: ${f(tarMs)}`, ratio(median(editMs), tarMs)]);
  rows.push(['receiver: first version (all blobs + tree)', f(recvColdMs), '', '']);
  rows.push(['receiver: new version differing by one file (goal < 300 ms; 1 blob fetched)', mm(recvMs), `cp -al of a tree (links only): ${mm(cpMs)}`, ratio(median(recvMs), median(cpMs))]);
  const totalMb = cold.totalBytes / 1024 / 1024;
  console.log(`Project: ${cold.manifest.entries.length} files, ${totalMb.toFixed(1)} MB (generated in ${f(genMs)} ms). Times in ms: median (min) of repeated runs, single runs otherwise.\n`);
  console.log('| operation | modulepickle (ms) | comparator (ms) | comparator / modulepickle (medians) |');
  console.log('|---|---:|---|---:|');
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
  const nproc = spawnSync('nproc', { encoding: 'utf8' }).stdout.trim();
  console.log(`\nNode ${process.version}, ${nproc} cores. warm runs: ${warm.map(f).join(', ')}; edits: ${editMs.map(f).join(', ')}; receiver: ${recvMs.map(f).join(', ')}`);
}

interface TreeOut {
  shipped: number;
  tree: { watchedUnchangedUs: number; fullUnchangedUs: number; watchedEditUs: number; fullEditUs: number };
  watched: { trivialUs: number; localUs: number; editUs: number; blobsPerEdit: number; manifestsPerEdit: number; stale: number };
  full: TreeOut['watched'];
}

/** What the tree costs a call, from generated user projects (tsx and compiled JS): the watched tree vs the full check. */
async function treeRows(): Promise<void> {
  const sizes = (process.env['BENCH_PROJECT_SIZES'] ?? '2000,20000').split(',').map(Number);
  console.log('\n#### The watched tree: what an unchanged call and the first call after a one-file edit cost (bench/user-scripts/tree-warm.ts)\n');
  console.log(`Node ${process.version}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}. Medians; a pool of 2 workers, a new inline closure per call; "full check" is \`ship: { watch: false }\` (a walk and a stat per file, as before).\n`);
  console.log('| project | mode | tree alone, unchanged: watched / full check | tree alone, after an edit: watched / full | end to end: trivial `run(() => 1)` | unchanged `run(() => v(i))`: watched / full | ratio to trivial (goal <= 2x) | first call after an edit: watched / full (goal < 100 ms) | blobs + manifests per edit | stale |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const files of sizes) {
    const dir = join(work, `user-${files}`);
    makeUserProject(dir, files);
    for (const mode of ['tsx', 'js'] as RunMode[]) {
      const o = await runUserScript<TreeOut>(dir, 'tree-warm.ts', mode);
      const us = (n: number): string => (n >= 1000 ? `${(n / 1000).toFixed(1)} ms` : `${n.toFixed(0)} µs`);
      console.log(
        `| ${files.toLocaleString('en')} (${o.shipped} shipped) | ${mode} | ${us(o.tree.watchedUnchangedUs)} / ${us(o.tree.fullUnchangedUs)} | ${us(o.tree.watchedEditUs)} / ${us(o.tree.fullEditUs)} | ` +
          `${us(o.watched.trivialUs)} | ${us(o.watched.localUs)} / ${us(o.full.localUs)} | ${(o.watched.localUs / o.watched.trivialUs).toFixed(2)}x / ${(o.full.localUs / o.full.trivialUs).toFixed(1)}x | ` +
          `${us(o.watched.editUs)} / ${us(o.full.editUs)} | ${o.watched.blobsPerEdit} + ${o.watched.manifestsPerEdit} | ${o.watched.stale + o.full.stale} |`,
      );
    }
  }
}

try {
  if (process.env['BENCH_SHIP_PART'] !== 'tree') await main();
  if (process.env['BENCH_SHIP_PART'] !== 'build') await treeRows();
} finally {
  rmSync(work, { recursive: true, force: true });
}
