// Queue executor: the warm path from a generated TypeScript user project (under tsx, and compiled by tsc), against
// raw BullMQ on the same private Redis in one run (bench/user-scripts/queue-warm.ts): an inline `run(() => 1)` round
// trip, the same on a worker started with --inline, jobs/s at worker concurrency 8; then where a round trip's time
// goes, stage by stage; then the first call after a one-file edit in a 2,000-file project with two queue workers.
// Run: npm run build && node --import tsx bench/queue.bench.ts   (or: npm run bench -- queue). Needs redis-server.
import { makeEditProject } from './project.ts';
import { makeUserProject, runUserScript, type RunMode } from './user-project.ts';
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createQueueExecutor } from '../src/index.ts';
import { createShipping } from '../src/executors/shipping.ts';
import { encodeTask, runTask, taskBody, FunctionCache } from '../src/executors/task.ts';
import { openEnvelope, sealFrame } from '../src/executors/queue/envelope.ts';
import { resolveKey } from '../src/executors/queue/sign.ts';
import { LocalPool } from '../src/executors/queue/local-pool.ts';
import { startRedis, type TestRedis } from '../test/fixtures/queue/redis.ts';
import { startWorkerProc, type WorkerProc } from '../test/fixtures/queue/procs.ts';

const KEY = 'bench-key-0123456789abcdef';
const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
const rawWorker = fileURLToPath(new URL('./queue-raw-worker.mjs', import.meta.url));
const work = realpathSync(mkdtempSync(join(tmpdir(), 'mp-bench-queue-')));
const procs: WorkerProc[] = [];

interface Out {
  latency: { name: string; us: number }[];
  throughput: { name: string; perSec: number }[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function startWorkers(redis: TestRedis): Promise<void> {
  const ours = async (queue: string, extra: string[]): Promise<WorkerProc> => {
    const cwd = mkdtempSync(join(work, 'w-'));
    return await startWorkerProc([cli, 'worker', '--redis', redis.url, '--queue', queue, '--cache', join(cwd, 'cache'), ...extra], {
      cwd,
      env: { ...process.env, MODULEPICKLE_KEY: KEY },
      ready: /ready on queue/,
    });
  };
  const raw = (queue: string, concurrency: number): Promise<WorkerProc> =>
    startWorkerProc([rawWorker, '127.0.0.1', String(redis.port), queue, String(concurrency)], { cwd: work, env: process.env });
  procs.push(
    ...(await Promise.all([
      raw('raw1', 1),
      raw('raw8', 8),
      ours('mp1', ['--concurrency', '1']),
      ours('mpi1', ['--concurrency', '1', '--inline']),
      ours('mp8', ['--concurrency', '8']),
      ours('mpi8', ['--concurrency', '8', '--inline']),
    ])),
  );
}

/** Median µs of `f` over `n` calls (after a warm-up), with an idle gap before each, as between real calls. */
async function micro(f: () => unknown, n = 400, gap = false): Promise<number> {
  for (let i = 0; i < 100; i++) await f();
  const t: number[] = [];
  for (let i = 0; i < n; i++) {
    if (gap) await new Promise((r) => setTimeout(r, 1));
    const s = performance.now();
    await f();
    t.push((performance.now() - s) * 1000);
  }
  return median(t);
}

/** The stages of a round trip that can be timed on their own, in this process (compiled TypeScript under tsx). */
async function stages(): Promise<{ name: string; us: number }[]> {
  const shipping = createShipping({});
  const dumpsOptions = shipping.dumpsOptions;
  const key = resolveKey(KEY);
  const store = { putValue: async () => 'unused' } as never;
  const task = await encodeTask(() => 1, [], { dumpsOptions });
  const frame = taskBody(task, false);
  const job = await sealFrame('job', frame, { key, queue: 'q', jobId: 'abc-1', store });
  const jobJson = JSON.parse(JSON.stringify(job)) as unknown;
  const pool = new LocalPool({ processes: 1, blobServer: { missing: async (h) => [...h], get: async () => new Map() }, onLog: () => {} });
  await pool.ready();
  const cache = new FunctionCache();
  const full = taskBody(task, true);
  const out = [
    { name: 'client: pickle the call (`encodeTask(() => 1, [])`, a new closure each time)', us: await micro(() => encodeTask(() => 1, [], { dumpsOptions })) },
    { name: 'client: seal + sign the job envelope (HMAC-SHA256, base64 frame)', us: await micro(() => sealFrame('job', frame, { key, queue: 'q', jobId: 'abc-1', store })) },
    { name: 'worker: check the job signature, open the envelope', us: await micro(() => openEnvelope('job', jobJson, { key, queue: 'q', jobId: 'abc-1' })) },
    { name: 'worker: run the task in process (`runTask`: decode args, call, pickle the result)', us: await micro(() => runTask(full, { cache })) },
    { name: 'worker: local-pool hop + run (`LocalPool.run`, pipes to a pool process, 1 ms idle before)', us: await micro(() => pool.run(task), 400, true) },
  ];
  await pool.close();
  return out;
}

async function main(): Promise<void> {
  const redis = await startRedis();
  try {
    await startWorkers(redis);
    console.log(`Node ${process.version}, ${new Date().toISOString()}, load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}; private Redis, one run.`);
    console.log('Latency: median of sequential calls, contenders interleaved in 15 rounds; throughput: 1,000 calls at once, median of 3 bursts.\n');
    const dir = join(work, 'user');
    const files = Number(process.env['BENCH_PROJECT_FILES'] ?? 2000);
    makeUserProject(dir, files);
    let tsxLatency: Out['latency'] = [];
    for (const mode of ['tsx', 'js'] as RunMode[]) {
      const out = await runUserScript<Out>(dir, 'queue-warm.ts', mode, { BENCH_REDIS_PORT: String(redis.port), BENCH_KEY: KEY });
      if (mode === 'tsx') tsxLatency = out.latency;
      const floor = out.latency[0]!.us;
      const rawRate = out.throughput[0]!.perSec;
      console.log(`#### ${files.toLocaleString('en')}-file project, ${mode === 'tsx' ? 'TypeScript under tsx' : 'compiled by tsc, plain node'}\n`);
      console.log('| round trip (one worker, concurrency 1) | latency (µs) | vs raw BullMQ |');
      console.log('| --- | ---: | ---: |');
      for (const r of out.latency) console.log(`| ${r.name} | ${r.us.toFixed(0)} | ${(r.us / floor).toFixed(2)}x |`);
      console.log('\n| 1,000 calls at once | jobs/s | vs raw BullMQ |');
      console.log('| --- | ---: | ---: |');
      for (const r of out.throughput) console.log(`| ${r.name} | ${r.perSec.toFixed(0)} | ${(r.perSec / rawRate).toFixed(2)}x |`);
      console.log('');
    }
    const st = await stages();
    const [raw, ours, inline] = tsxLatency.map((r) => r.us);
    console.log('#### Where a round trip goes (µs, medians; the first rows timed alone in this process)\n');
    console.log('| stage | µs |');
    console.log('| --- | ---: |');
    for (const r of st) console.log(`| ${r.name} | ${r.us.toFixed(0)} |`);
    console.log(`| raw BullMQ round trip (add, worker fetch, complete, QueueEvents): the floor | ${raw!.toFixed(0)} |`);
    console.log(`| ours with --inline minus raw: pickling, signatures, envelopes, bigger jobs, unpickling | ${(inline! - raw!).toFixed(0)} |`);
    console.log(`| ours (local pool) minus ours --inline: the local-pool hop in place | ${(ours! - inline!).toFixed(0)} |`);
    await editLatency(redis);
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    await redis.stop();
  }
}

// First call after a one-file edit in a 2,000-file project, two queue workers (each with its own cache).
async function editLatency(redis: TestRedis): Promise<void> {
  const { project, target, files } = makeEditProject(work);
  const mod = (await import(target)) as { f: (x: number) => number };
  for (let i = 0; i < 2; i++) {
    const cwd = mkdtempSync(join(work, 'edit-'));
    procs.push(
      await startWorkerProc([cli, 'worker', '--redis', redis.url, '--queue', 'edit', '--concurrency', '1', '--cache', join(cwd, 'cache')], {
        cwd,
        env: { ...process.env, MODULEPICKLE_KEY: KEY },
        ready: /ready on queue/,
      }),
    );
  }
  const ex = createQueueExecutor({ connection: redis.url, queue: 'edit', key: KEY, dumpsOptions: { root: project } });
  const call = (x: number): Promise<number> => ex.run((y: number) => mod.f(y), x);
  // Both workers get the tree: two calls at once, each worker takes one.
  let t = performance.now();
  await Promise.all([call(1), call(1)]);
  const first = performance.now() - t;
  const firstUploads = ex.stats.uploadedBlobs;
  t = performance.now();
  await call(1);
  const unchanged = performance.now() - t;
  const edits: number[] = [];
  const uploadsBefore = ex.stats.uploadedBlobs;
  for (let i = 1; i <= 5; i++) {
    writeFileSync(target, `export const bump = ${i};\nexport function f(x) { return x + bump; }\n`);
    await new Promise((r) => setTimeout(r, 60)); // past the stat cache's racy window, as between real edits
    t = performance.now();
    const v = await call(1);
    edits.push(performance.now() - t);
    if (v !== 1 + i) throw new Error(`edit ${i} not seen: got ${v}`);
  }
  const perEdit = (ex.stats.uploadedBlobs - uploadsBefore) / edits.length;
  await ex.close();
  console.log(`\nProject of ${files} files (${ex.lastBuild?.manifest.entries.length ?? '?'} shipped), two queue workers, same Redis:\n`);
  console.log('| call | latency (ms) |');
  console.log('| --- | ---: |');
  console.log(`| first calls (both workers cold: ${firstUploads} blobs uploaded, each worker fetches the tree) | ${first.toFixed(1)} |`);
  console.log(`| unchanged call | ${unchanged.toFixed(1)} |`);
  console.log(`| first call after a one-file edit (median of ${edits.length}) | ${median(edits).toFixed(1)} |`);
  console.log(`\n(${perEdit} blobs uploaded per edit: the edited file and the function payload that carries the new manifest.)`);
}

try {
  await main();
} finally {
  rmSync(work, { recursive: true, force: true });
}
