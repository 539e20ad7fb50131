// Round-trip fixture tables, run in process (async and sync pairs) and through ONE fresh plain `node`
// process that decodes every payload with the built package, describes the result and re-encodes it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { dumps, dumpsSync, loads, loadsSync } from '../src/index.ts';
import { describeValue } from './fixtures/codec/describe.mjs';
import { tables, type Fixture } from './fixtures/codec/tables.ts';

const child = fileURLToPath(new URL('./fixtures/codec/decode-all.mjs', import.meta.url));

interface Prepared {
  readonly fixture: Fixture;
  readonly original: unknown;
  readonly bytes: Uint8Array;
  readonly description: unknown;
}
type ChildResult =
  | { description: unknown; reencoded: string; error?: undefined }
  | { error: { name: string; code?: string; message: string } };

const prepared = new Map<string, Prepared>();
let childResults: Record<string, ChildResult> = {};
let dir = '';

function assertHeader(bytes: Uint8Array): void {
  assert.ok(bytes instanceof Uint8Array, 'dumps returns a Uint8Array');
  assert.deepEqual([...bytes.subarray(0, 3)], [0x4d, 0x50, 0x4b], 'payload starts with the magic MPK');
  assert.equal(bytes[3], 1, 'format version 1');
}

function same(a: Uint8Array, b: Uint8Array, what: string): void {
  assert.ok(Buffer.from(a).equals(Buffer.from(b)), `${what}: ${a.length} vs ${b.length} bytes differ`);
}

/** Compares descriptions as JSON first: deepStrictEqual recurses too deep on long chains; it only shows the diff. */
function sameDescription(actual: unknown, expected: unknown, message?: string): void {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) assert.deepStrictEqual(actual, expected, message);
}

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
      prepared.set(key, { fixture, original, bytes, description: describeValue(original) });
    }
  }
  writeFileSync(join(dir, 'index.json'), JSON.stringify(index));
  const r = spawnSync(process.execPath, [child, dir], { encoding: 'utf8', timeout: 120_000 });
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
        const description = p?.description ?? describeValue(original);
        assertHeader(bytes);
        same(dumpsSync(original), bytes, 'dumpsSync and dumps give the same bytes');
        same(await dumps(original), bytes, 'encoding the same value twice gives the same bytes');

        const decoded = await loads(bytes);
        sameDescription(describeValue(decoded), description);
        same(await dumps(decoded), bytes, 're-encoding the decoded value gives the same bytes');
        fixture.check?.(decoded, original);

        const decodedSync = loadsSync(bytes);
        sameDescription(describeValue(decodedSync), description);
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
