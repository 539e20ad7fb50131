// Round-trip fixture tables, run in process (async and sync pairs) and through ONE fresh plain `node`
// process that decodes every payload with the built package, describes the result and re-encodes it
// (without the V8 natives, so both encoder paths must give the same bytes).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FORMAT_VERSION, dumps, dumpsSync, loads, loadsSync } from '../src/index.ts';
import { describeValue } from './fixtures/codec/describe.mjs';
import { tables, type Fixture } from './fixtures/codec/tables.ts';

const child = fileURLToPath(new URL('./fixtures/codec/decode-all.mjs', import.meta.url));

interface Prepared {
  readonly fixture: Fixture;
  readonly original: unknown;
  readonly bytes: Uint8Array;
  /** JSON of the description: a string is a small fraction of the object graph it describes (100,000-level fixtures). */
  readonly description: string;
}
type ChildResult =
  | { description: string; reencoded: string; error?: undefined }
  | { error: { name: string; code?: string; message: string } };

const prepared = new Map<string, Prepared>();
let childResults: Record<string, ChildResult> = {};
let dir = '';

function assertHeader(bytes: Uint8Array): void {
  assert.ok(bytes instanceof Uint8Array, 'dumps returns a Uint8Array');
  assert.deepEqual([...bytes.subarray(0, 3)], [0x4d, 0x50, 0x4b], 'payload starts with the magic MPK');
  assert.equal(bytes[3], FORMAT_VERSION, `format version ${FORMAT_VERSION}`);
}

function same(a: Uint8Array, b: Uint8Array, what: string): void {
  assert.ok(Buffer.from(a).equals(Buffer.from(b)), `${what}: ${a.length} vs ${b.length} bytes differ`);
}

/** Compares descriptions as JSON; on a difference, deepStrictEqual shows the diff. */
function sameDescription(actual: unknown, expected: string, message?: string): void {
  const json = typeof actual === 'string' ? actual : JSON.stringify(actual);
  if (json !== expected) assert.deepStrictEqual(JSON.parse(json), JSON.parse(expected), message);
}
const describeJson = (v: unknown): string => JSON.stringify(describeValue(v));

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mp-codec-'));
  const index: { name: string; file: string }[] = [];
  for (const [table, fixtures] of Object.entries(tables)) {
    for (const fixture of fixtures) {
      const key = `${table}: ${fixture.name}`;
      assert.ok(!prepared.has(key), `duplicate fixture name ${key}`);
      const original = fixture.value();
      let bytes: Uint8Array;
      try {
        bytes = await dumps(original);
      } catch {
        continue; // the in-process test reports the encode error
      }
      const file = `${index.length}.bin`;
      writeFileSync(join(dir, file), bytes);
      index.push({ name: key, file });
      prepared.set(key, { fixture, original, bytes, description: describeJson(original) });
    }
  }
  writeFileSync(join(dir, 'index.json'), JSON.stringify(index));
  // The child runs without the V8 natives (MODULEPICKLE_NATIVES=0): its re-encoded bytes must still equal the
  // bytes encoded here, where the hidden-class proofs of src/codec/shape-proof.ts are on.
  const r = spawnSync(process.execPath, [child, dir], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, MODULEPICKLE_NATIVES: '0' } });
  assert.equal(r.status, 0, `child node failed: ${r.stderr}`);
  childResults = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Record<string, ChildResult>;
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

for (const [table, fixtures] of Object.entries(tables)) {
  describe(`codec round trip: ${table}`, () => {
    for (const fixture of fixtures) {
      const key = `${table}: ${fixture.name}`;

      test(`${fixture.name} (in process)`, async () => {
        const p = prepared.get(key);
        // Not prepared means dumps threw: run it again here so the failure shows the encode error.
        const original = p?.original ?? fixture.value();
        const bytes = p?.bytes ?? (await dumps(original));
        const description = p?.description ?? describeJson(original);
        assertHeader(bytes);
        same(dumpsSync(original), bytes, 'dumpsSync and dumps give the same bytes');
        same(await dumps(original), bytes, 'encoding the same value twice gives the same bytes');

        const decoded = await loads(bytes);
        sameDescription(describeJson(decoded), description);
        same(await dumps(decoded), bytes, 're-encoding the decoded value gives the same bytes');
        fixture.check?.(decoded, original);

        const decodedSync = loadsSync(bytes);
        sameDescription(describeJson(decodedSync), description);
        fixture.check?.(decodedSync, original);
      });

      test(`${fixture.name} (fresh node process)`, () => {
        const p = prepared.get(key);
        assert.ok(p, 'dumps failed; see the in-process test');
        const r = childResults[key];
        assert.ok(r, 'the child reported no result');
        if (r.error) assert.fail(`child failed to decode: ${r.error.code ?? r.error.name}: ${r.error.message}`);
        sameDescription(r.description, p.description, 'decoded in the child, described there');
        same(readFileSync(join(dir, r.reencoded)), p.bytes, 'bytes re-encoded by the child equal the original bytes');
      });
    }
  });
}

test('the hidden-class proofs are available on this Node (else every object pays a descriptor per property)', async () => {
  const { shapeProofAvailable } = await import('../src/codec/shape-proof.ts');
  assert.equal(shapeProofAvailable(), process.env['MODULEPICKLE_NATIVES'] !== '0');
});
