/*
 * Functions benchmark: modulepickle `dumps`/`loads` of closures side by side with @pulumi/pulumi's
 * `runtime.serializeFunction` (the only JS peer that captures closures), in one run.
 *   node --import tsx bench/functions.bench.ts      (after `npm run build`: the fresh-process rows use dist/)
 * Rows: first call in a fresh process, a warm small closure (5 captures), a closure capturing a 200-function local
 * module, and loading each payload. Medians over repeated runs; Pulumi's "load" evaluates its module text.
 * Then the first dumps of a closure over a local module in a fresh process of a generated TypeScript project, under
 * tsx and compiled (bench/user-scripts/first-dumps.ts); BENCH_BASELINE=<built older checkout> adds a before column.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dumps, loads } from '../src/index.ts';
import { baselineCheckout, makeUserProject, runUserScript, type RunMode } from './user-project.ts';

const require = createRequire(import.meta.url);
const repo = fileURLToPath(new URL('..', import.meta.url));
const distUrl = pathToFileURL(`${repo}dist/index.js`).href;
const bigPath = `${repo}test/fixtures/functions/lib/two-hundred.cjs`;
const big = require(bigPath) as Record<string, (x: number) => number>;

type Pulumi = { runtime: { serializeFunction: (f: Function, o?: object) => Promise<{ text: string; exportName: string }> } };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

async function time(n: number, f: () => Promise<unknown> | unknown): Promise<number> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await f();
    out.push(performance.now() - t);
  }
  return median(out);
}

interface FirstDumps {
  importMs: number;
  firstMs: number;
  secondMs: number;
}

/** First dumps in fresh processes of a generated user project: median of `runs`, per mode. */
async function projectFirstDumps(dir: string, runs: number): Promise<Map<string, FirstDumps>> {
  const out = new Map<string, FirstDumps>();
  for (const mode of ['tsx', 'js'] as RunMode[]) {
    for (const ship of ['0', '1']) {
      const rs: FirstDumps[] = [];
      for (let i = 0; i < runs; i++) rs.push(await runUserScript<FirstDumps>(dir, 'first-dumps.ts', mode, { BENCH_SHIP: ship }));
      out.set(`${mode}${ship === '1' ? ' +ship' : ''}`, {
        importMs: median(rs.map((r) => r.importMs)),
        firstMs: median(rs.map((r) => r.firstMs)),
        secondMs: median(rs.map((r) => r.secondMs)),
      });
    }
  }
  return out;
}

async function firstDumpsTable(): Promise<void> {
  const work = realpathSync(mkdtempSync(join(tmpdir(), 'mp-bench-first-')));
  try {
    const files = Number(process.env['BENCH_FIRST_FILES'] ?? 2000);
    const runs = Number(process.env['BENCH_FIRST_RUNS'] ?? 5);
    makeUserProject(join(work, 'after'), files);
    const baseline = baselineCheckout();
    if (baseline) makeUserProject(join(work, 'before'), files, baseline);
    const after = await projectFirstDumps(join(work, 'after'), runs);
    const before = baseline ? await projectFirstDumps(join(work, 'before'), runs) : undefined;
    console.log(`\nFirst dumps of a closure over a local module, fresh process of a ${files.toLocaleString('en')}-file TypeScript project (median of ${runs}; the module travels by reference):\n`);
    console.log(`| run as | import (ms) | first dumps (ms) | next closure (ms) |${before ? ' before: first dumps (ms) | before: next closure (ms) |' : ''}`);
    console.log(`|---|---:|---:|---:|${before ? '---:|---:|' : ''}`);
    const label: Record<string, string> = { tsx: 'TypeScript under tsx, ship: false', js: 'compiled by tsc, plain node, ship: false', 'tsx +ship': 'under tsx, project tree shipped', 'js +ship': 'compiled, project tree shipped' };
    for (const [k, r] of after) {
      const b = before?.get(k);
      console.log(`| ${label[k]} | ${r.importMs.toFixed(1)} | ${r.firstMs.toFixed(1)} | ${r.secondMs.toFixed(2)} |${b ? ` ${b.firstMs.toFixed(1)} | ${b.secondMs.toFixed(2)} |` : ''}`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** First call in a fresh node process, timed inside the child (import excluded, reported apart). */
function firstCall(which: 'modulepickle' | 'pulumi'): { importMs: number; firstMs: number } {
  const script = which === 'modulepickle'
    ? `const t0 = performance.now(); const { dumps } = await import(${JSON.stringify(distUrl)}); const t1 = performance.now();
       const k = 3, o = { a: 1 }; const f = (x) => x * k + o.a; await dumps(f); const t2 = performance.now();
       console.log(JSON.stringify({ importMs: t1 - t0, firstMs: t2 - t1 }));`
    : `const t0 = performance.now(); const pulumi = (await import('@pulumi/pulumi')).default ?? (await import('@pulumi/pulumi')); const t1 = performance.now();
       const k = 3, o = { a: 1 }; const f = (x) => x * k + o.a; await pulumi.runtime.serializeFunction(f); const t2 = performance.now();
       console.log(JSON.stringify({ importMs: t1 - t0, firstMs: t2 - t1 }));`;
  const runs: { importMs: number; firstMs: number }[] = [];
  for (let i = 0; i < 3; i++) {
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: repo, encoding: 'utf8' });
    runs.push(JSON.parse(out.trim().split('\n').pop() as string) as { importMs: number; firstMs: number });
  }
  return { importMs: median(runs.map((r) => r.importMs)), firstMs: median(runs.map((r) => r.firstMs)) };
}

function pulumiLoad(text: string, exportName: string): Function {
  const module = { exports: {} as Record<string, Function> };
  new Function('exports', 'require', 'module', text)(module.exports, require, module);
  return module.exports[exportName] as Function;
}

async function main(): Promise<void> {
  const pulumi = (await import('@pulumi/pulumi')) as unknown as Pulumi;
  const rows: [string, number, number | undefined][] = [];

  const mpFirst = firstCall('modulepickle');
  const puFirst = firstCall('pulumi');
  rows.push(['import in a fresh process', mpFirst.importMs, puFirst.importMs]);
  rows.push(['first dumps of a closure in a fresh process', mpFirst.firstMs, puFirst.firstMs]);

  // Warm small closure with 5 captures (number, string, object, array, function).
  const a = 2, b = 'x', c = { k: 1 }, d = [1, 2, 3], e = (x: number) => x + 1;
  const small = (x: number) => e(x) * a + b.length + c.k + d.length;
  await dumps(small);
  await pulumi.runtime.serializeFunction(small);
  const n = 200;
  const mpSmall = await time(n, () => dumps(small));
  const puSmall = await time(30, () => pulumi.runtime.serializeFunction(small));
  rows.push(['dumps: warm small closure (5 captures)', mpSmall, puSmall]);

  const bigClosure = (x: number) => big['f199']!(x) + big['f0']!(x);
  // The pickle alone (the module is a reference), as Pulumi serializes it; shipping the project tree is measured apart.
  const noShip = { ship: false } as const;
  await dumps(bigClosure, noShip);
  const mpBig = await time(n, () => dumps(bigClosure, noShip));
  let puBig: number | undefined;
  try {
    await pulumi.runtime.serializeFunction(bigClosure);
    puBig = await time(10, () => pulumi.runtime.serializeFunction(bigClosure));
  } catch {
    puBig = undefined;
  }
  rows.push(['dumps: closure capturing a 200-function local module', mpBig, puBig]);
  rows.push(['dumps: the same, with the project tree inline (ship: warm stat cache)', await time(20, () => dumps(bigClosure)), undefined]);

  const smallBytes = await dumps(small);
  const bigBytes = await dumps(bigClosure, noShip);
  const puSmallText = await pulumi.runtime.serializeFunction(small);
  rows.push(['loads: warm small closure', await time(n, () => loads(smallBytes)), await time(n, () => pulumiLoad(puSmallText.text, puSmallText.exportName))]);
  let puBigLoad: number | undefined;
  if (puBig !== undefined) {
    const t = await pulumi.runtime.serializeFunction(bigClosure);
    puBigLoad = await time(50, () => pulumiLoad(t.text, t.exportName));
  }
  rows.push(['loads: closure capturing a 200-function module', await time(n, () => loads(bigBytes)), puBigLoad]);

  // Repeated dumps of an unchanged capture-free function (static facts are cached per function).
  const pure = (x: number) => x * 2;
  await dumps(pure);
  rows.push(['dumps: warm capture-free function (cache)', await time(n, () => dumps(pure)), await time(30, () => pulumi.runtime.serializeFunction(pure))]);

  const coverage = await featureCoverage(pulumi);
  const sizes = `payload sizes: small closure ${smallBytes.length} B (Pulumi text ${puSmallText.text.length} B), 200-function module closure ${bigBytes.length} B`;
  console.log('| case | modulepickle (ms) | Pulumi serializeFunction (ms) | Pulumi / modulepickle |');
  console.log('|---|---:|---:|---:|');
  for (const [name, mp, pu] of rows) {
    console.log(`| ${name} | ${mp.toFixed(3)} | ${pu === undefined ? 'n/a' : pu.toFixed(3)} | ${pu === undefined ? 'n/a' : `${(pu / mp).toFixed(1)}x`} |`);
  }
  console.log(`\n${sizes}`);
  console.log('\n| feature (in process, behaviour compared with home) | modulepickle | Pulumi serializeFunction |');
  console.log('|---|---|---|');
  for (const [name, mp, pu] of coverage) console.log(`| ${name} | ${mp} | ${pu} |`);
  await firstDumpsTable();
}

/** Which features survive a round trip: each case's check result after loading must equal the result at home. */
async function featureCoverage(pulumi: Pulumi): Promise<[string, string, string][]> {
  class Account {
    owner = 'ann';
    #balance = 10;
    deposit(n: number): number {
      return (this.#balance += n);
    }
  }
  const prices = new Map([['tea', 3]]);
  const since = new Date(0);
  let shared = 0;
  const log: number[] = [];
  const inc = () => {
    log.push(1);
    return ++shared;
  };
  const read = () => shared;
  const cases: [string, () => unknown][] = [
    ['class field', () => new Account().owner],
    ['#private field', () => new Account().deposit(5)],
    ['captured Map', () => prices.get('tea')],
    ['captured Date', () => since.getTime()],
    ['shared let between two functions', () => [inc(), inc(), read()]],
    ['async function', async () => (await Promise.resolve(2)) * 3],
  ];
  const out: [string, string, string][] = [];
  for (const [name, f] of cases) {
    // Both serialize before the home run, so all three start from the same state.
    const bytes = await dumps(f).catch(() => undefined);
    const text = await pulumi.runtime.serializeFunction(f).catch(() => undefined);
    const want = JSON.stringify(await f());
    let mp = 'fails';
    try {
      if (bytes) mp = JSON.stringify(await ((await loads(bytes)) as () => unknown)()) === want ? 'works' : 'wrong result';
    } catch {
      mp = 'fails';
    }
    let pu = 'fails';
    try {
      if (text) pu = JSON.stringify(await (pulumiLoad(text.text, text.exportName) as () => unknown)()) === want ? 'works' : 'wrong result';
    } catch {
      pu = 'fails';
    }
    out.push([name, mp, pu]);
  }
  return out;
}

await main();
