/**
 * The warm path for closures made per call: a new closure object at a known source location reuses its location's
 * facts and, where nothing it uses can have changed, its last scope read. Each case runs in a fresh process with the
 * V8 natives (the accelerated path) and without them (every closure inspected afresh, as before): the payloads must
 * be byte-identical, each loaded payload must give the value of its step, and the reuse must actually happen where
 * it is allowed and never where it is not. Script lookup without the debugger must agree with a full replay.
 * Fixtures: test/fixtures/projects/warm/ (run under tsx; the CommonJS one uses dist/, so build first).
 */
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createPool } from '../src/index.ts';

const run = promisify(execFile);
const fixtures = 'test/fixtures/projects/warm';

type Result = { hex: string[]; results: unknown[]; reads: number; reused: number };

async function fixture<T>(file: string, natives: boolean): Promise<T> {
  const env = { ...process.env, MODULEPICKLE_NATIVES: natives ? '1' : '0' };
  const { stdout } = await run(process.execPath, ['--expose-gc', '--import', 'tsx', `${fixtures}/${file}`], { env, maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(stdout.trim().split('\n').pop() as string) as T;
}

/** Class tracker ids are random per process: blank them out before comparing bytes across processes. */
function normalize(hex: string): string {
  const text = Buffer.from(hex, 'hex').toString('latin1');
  return Buffer.from(text.replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '0'.repeat(36)), 'latin1').toString('hex');
}

const expected: Record<string, { results: unknown[]; reuse: 'yes' | 'no' | 'any' }> = {
  'no captures': { results: [1, 1, 1, 1, 1, 1], reuse: 'yes' },
  'captured const object mutated between calls': { results: [0, 7, 14, 21, 28, 35], reuse: 'yes' },
  'module let changed between calls': { results: [0, 1, 2, 0, 1, 2], reuse: 'no' },
  'class captured': { results: [2, 2, 2, 4, 4, 4], reuse: 'any' },
  'nested closures': { results: [0, 2, 4, 6, 0, 2], reuse: 'no' },
  'same location, different captured values': { results: [1, 'one', { one: 1 }, [1, 'one'], null, 1], reuse: 'no' },
  // An import of a function its module never reassigns is settled: neither the closure nor the function is re-read.
  'module import used (ESM binding)': { results: [3, 3, 3, 3, 3, 3], reuse: 'yes' },
  'import through a .js specifier of a .ts module': { results: [6, 6, 6, 6, 6, 6], reuse: 'yes' },
  'imported binding its module reassigns': { results: ['first', 'second', 'first', 'second', 'first', 'second'], reuse: 'any' },
  'import through a re-exporting module': { results: [9, 9, 9, 9, 9, 9], reuse: 'any' },
  'imported const object mutated': { results: [11, 12, 11, 12, 11, 12], reuse: 'yes' },
  'exported binding reassigned at one location': { results: [11, 12, 11, 12, 11, 12], reuse: 'no' },
  'a former export at the same location': { results: [11, 12, 13, 14], reuse: 'any' },
  'module-level let in another module': { results: [1, 2, 3, 4, 5, 6], reuse: 'no' },
  'captured let in a loop': { results: [0, 2, 4, 6], reuse: 'any' },
  'temporal dead zone, then initialized': { results: [{ ready: true }], reuse: 'any' },
  'an edited source file (new script at the same path)': {
    results: ['esm v1', 'esm v1', 'cjs v1', 'cjs v1', 'esm v2', 'esm v2', 'cjs v2', 'cjs v2', 'esm v3', 'esm v3', 'cjs v3', 'cjs v3'],
    reuse: 'any',
  },
  'a kept plan holds no replaced module value': { results: [true, 'function'], reuse: 'any' },
  'cjs: no captures': { results: [1, 1, 1, 1, 1, 1], reuse: 'any' },
  'cjs: module import used ((0, import_x.add) form)': { results: [0, 5, 10, 15, 20, 25], reuse: 'no' },
  'cjs: module let changed': { results: [0, 1, 2, 3, 4, 5], reuse: 'no' },
  'cjs: const object mutated': { results: [0, 2, 4, 6, 8, 10], reuse: 'any' },
};

describe('closures made per call: reused facts give the bytes of a fresh dumps', () => {
  let fast: Record<string, Result> = {};
  let slow: Record<string, Result> = {};
  before(async () => {
    const [esmFast, esmSlow, cjsFast, cjsSlow] = await Promise.all([
      fixture<Record<string, Result>>('cases.mts', true),
      fixture<Record<string, Result>>('cases.mts', false),
      fixture<Record<string, Result>>('cases-cjs.cts', true),
      fixture<Record<string, Result>>('cases-cjs.cts', false),
    ]);
    fast = { ...esmFast, ...cjsFast };
    slow = { ...esmSlow, ...cjsSlow };
  });

  for (const [name, want] of Object.entries(expected)) {
    it(name, () => {
      const f = fast[name];
      const s = slow[name];
      assert.ok(f && s, `case '${name}' did not run`);
      assert.deepEqual(f.results, want.results, 'each payload loads to the value of its step (with the natives)');
      assert.deepEqual(s.results, want.results, 'each payload loads to the value of its step (without the natives)');
      assert.deepEqual(f.hex.map(normalize), s.hex.map(normalize), 'payloads are byte-identical with and without reuse');
      assert.equal(s.reused, 0, 'without the natives nothing is reused');
      if (want.reuse === 'yes') assert.ok(f.reused >= f.hex.length - 1, `scope reads were reused (${f.reused} of ${f.hex.length})`);
      if (want.reuse === 'no') assert.equal(f.reused, 0, 'nothing that may have changed was reused');
    });
  }

  it('an import binding is settled only when it can never change', () => {
    // Both reads skipped: the closure's import of a function declaration, and that function's own export.
    assert.ok(fast['module import used (ESM binding)']!.reads <= 2);
    // The closure over a binding its module reassigns is read every step (the reused reads are the swapped-in arrows).
    assert.ok(fast['imported binding its module reassigns']!.reads >= 6);
    assert.ok(fast['import through a re-exporting module']!.reads >= 6, 'a re-export is not taken for the home module');
  });

  it('a changed capture travels: payloads differ exactly where the captured state differs', () => {
    const hex = fast['captured const object mutated between calls']!.hex;
    assert.equal(new Set(hex).size, hex.length);
    const same = fast['no captures']!.hex;
    assert.equal(new Set(same).size, 1);
    const values = fast['same location, different captured values']!.hex;
    assert.equal(values[0], values[5], 'the same captured value gives the same bytes');
    assert.notEqual(values[0], values[1]);
  });
});

describe('script lookup without the debugger', () => {
  it('natives + coverage give the URL and module kind a full scriptParsed replay gives, and a first dumps needs no replay', async () => {
    for (const natives of [true, false]) {
      type Row = { name: string; lazy?: { url: string; isModule: boolean }; replay?: { url: string; isModule: boolean } };
      const out = await fixture<{ afterFirstDumps: { replay: number; coverage: number }; beforeReplay: { replay: number }; rows: Row[] }>('lookup.mts', natives);
      // Without the natives, script sources still come from the debugger.
      if (natives) assert.equal(out.afterFirstDumps.replay, 0, 'the first dumps of a closure over a local module did not enable the debugger');
      assert.ok(out.afterFirstDumps.coverage >= 1, 'URLs came from coverage');
      assert.equal(out.rows.length, 8);
      for (const r of out.rows) {
        assert.ok(r.lazy && r.replay, `${r.name}: both lookups found the script`);
        assert.deepEqual(r.lazy, r.replay, `${r.name}: same URL and module kind`);
      }
    }
  });
});

describe('executors: a payload kept per location', () => {
  it('equals a fresh dumps at every step, and is reused only where the bytes are settled', async () => {
    const out = await fixture<Record<string, { same: boolean; hits: number }>>('task-keys.mts', true);
    const reused = new Set(['no captures', 'primitive module const', 'two primitive consts']);
    assert.equal(Object.keys(out).length, 9);
    for (const [name, r] of Object.entries(out)) {
      assert.ok(r.same, `${name}: the kept payload is the bytes of a fresh dumps`);
      if (reused.has(name)) assert.equal(r.hits, 5, `${name}: kept payload reused`);
      else assert.equal(r.hits, 0, `${name}: not reused`);
    }
  });
});

const k = 3;
describe('a pool: a new closure object per call does not defeat the worker\'s function cache', () => {
  it('each distinct function is sent once per worker; changed captures travel alone and give their value', async () => {
    const pool = createPool({ workers: 2, onLog: () => {} });
    try {
      await pool.ready();
      for (let i = 0; i < 20; i++) assert.equal(await pool.run(() => 1), 1);
      for (let i = 0; i < 20; i++) assert.equal(await pool.run((x: number) => x + k, i), i + 3);
      // Two distinct functions, each sent at most once to each of the two workers.
      assert.ok(pool.stats.functionsSent <= 4, `functions sent: ${pool.stats.functionsSent}`);
      const before = pool.stats.functionsSent;
      for (let i = 0; i < 5; i++) assert.equal(await pool.run(() => i * 2), i * 2);
      // A closure over a per-call local: its template goes once to each worker, its captures with every call.
      assert.ok(pool.stats.functionsSent - before <= 2, `templates sent: ${pool.stats.functionsSent - before}`);
    } finally {
      await pool.close();
    }
  });
});
