// Property tests (fast-check, fixed seeds): random value graphs round-trip structurally and byte-exactly,
// and mutated/truncated payloads decode to a value or a DecodeError, never anything else.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DecodeError, dumpsSync, loadsSync } from '../src/index.ts';
import { containsCallable, describeValue } from './fixtures/codec/describe.mjs';

const SEED = 20261127;

const extraValues: fc.Arbitrary<unknown>[] = [
  fc.boolean(),
  fc.integer(),
  fc.double(),
  fc.bigInt({ min: -(2n ** 200n), max: 2n ** 200n }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.string({ unit: fc.integer({ min: 0xd7f0, max: 0xe010 }).map((c) => String.fromCharCode(c)), maxLength: 6 }),
  fc.constantFrom(null, undefined, -0, NaN, Infinity, -Infinity, Number.MIN_VALUE, Number.MAX_VALUE, 2 ** 53),
  fc.constantFrom(Symbol.for('fuzz'), Symbol.iterator, Symbol.toStringTag),
  fc.string({ maxLength: 5 }).map((d) => Symbol(d)),
  fc.date({ noInvalidDate: false }),
  fc.constantFrom('', 'g', 'gimsuy', 'dv').chain((flags) =>
    fc.constantFrom('a+b', '[x-z]', '\\d', '^$', '(?<n>q)').map((src) => new RegExp(src, flags))),
  fc.tuple(fc.constantFrom(Error, TypeError, RangeError), fc.string({ maxLength: 10 })).map(([C, m]) => new C(m)),
  fc.bigInt64Array({ maxLength: 4 }),
  fc.bigUint64Array({ maxLength: 4 }),
  fc.uint8Array({ maxLength: 16 }).map((u) => u.buffer),
  fc.uint8Array({ maxLength: 16 }).map((u) => new DataView(u.buffer)),
  fc.uint8Array({ maxLength: 16 }).map((u) => Buffer.from(u)),
  fc.webUrl().map((u) => new URL(u)),
];

const key = fc.oneof(fc.string({ maxLength: 6 }), fc.nat(20).map(String), fc.constantFrom('__proto__', 'constructor', 'length'));

const base = fc.anything({
  key,
  values: extraValues,
  maxDepth: 4,
  maxKeys: 5,
  withBoxedValues: true,
  withSet: true,
  withMap: true,
  withNullPrototype: true,
  withBigInt: true,
  withDate: true,
  withTypedArray: true,
  withSparseArray: true,
});

/** Walks the graph and adds references between containers (shared references and cycles). */
function addLinks(root: unknown, links: [number, number, number][], locks: [number, number][]): unknown {
  const containers: object[] = [];
  const seen = new Set<unknown>();
  const stack = [root];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null || seen.has(v) || ArrayBuffer.isView(v)) continue;
    seen.add(v);
    if (Array.isArray(v) || v instanceof Map || v instanceof Set || Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null) {
      containers.push(v);
    }
    if (v instanceof Map) for (const [k, x] of v) stack.push(k, x);
    else if (v instanceof Set) for (const x of v) stack.push(x);
    else for (const k of Object.keys(v)) stack.push((v as Record<string, unknown>)[k]);
  }
  if (containers.length === 0) return root;
  links.forEach(([from, to, how], n) => {
    const a = containers[from % containers.length]!;
    const b = containers[to % containers.length]!;
    if (Array.isArray(a)) a.push(b);
    else if (a instanceof Map) (how % 2 === 0 ? a.set(`link${n}`, b) : a.set(b, a));
    else if (a instanceof Set) a.add(b);
    else Object.defineProperty(a, `link${n}`, { value: b, enumerable: how % 3 !== 0, writable: true, configurable: how % 2 === 0 });
  });
  // Then freeze, seal or lock some containers (after linking: a frozen array cannot be pushed to).
  const lock: ((o: object) => unknown)[] = [Object.freeze, Object.seal, Object.preventExtensions];
  for (const [which, how] of locks) lock[how % 3]!(containers[which % containers.length]!);
  return root;
}

const graph = fc
  .tuple(base, fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat()), { maxLength: 6 }), fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 2 }))
  .map(([v, links, locks]) => addLinks(v, links, locks));

test('random value graphs round-trip structurally and byte-exactly', () => {
  fc.assert(
    fc.property(graph, (value) => {
      const bytes = dumpsSync(value);
      const decoded = loadsSync(bytes);
      assert.deepStrictEqual(describeValue(decoded), describeValue(value));
      assert.ok(Buffer.from(dumpsSync(decoded)).equals(Buffer.from(bytes)), 're-encoding gives the same bytes');
    }),
    { seed: SEED, numRuns: 3000 },
  );
});

type Mutation = { kind: 'flip' | 'set' | 'insert' | 'delete' | 'truncate'; at: number; byte: number; len: number };
const mutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constantFrom('flip', 'set', 'insert', 'delete', 'truncate'),
  at: fc.nat(),
  byte: fc.oneof(fc.constantFrom(0, 0x7f, 0x80, 0xff), fc.nat(255)),
  len: fc.integer({ min: 1, max: 9 }),
});

function mutate(bytes: Uint8Array, mutations: Mutation[]): Uint8Array {
  let out = Buffer.from(bytes);
  for (const m of mutations) {
    if (out.length === 0) break;
    const at = m.at % out.length;
    switch (m.kind) {
      case 'flip': out[at] = out[at]! ^ (1 << (m.byte % 8)); break;
      case 'set': out[at] = m.byte; break;
      case 'insert': out = Buffer.concat([out.subarray(0, at), Buffer.alloc(m.len, m.byte), out.subarray(at)]); break;
      case 'delete': out = Buffer.concat([out.subarray(0, at), out.subarray(at + m.len)]); break;
      case 'truncate': out = out.subarray(0, at); break;
    }
  }
  return out;
}

function decodesSafely(bytes: Uint8Array): void {
  let value: unknown;
  try {
    value = loadsSync(bytes, { code: false });
  } catch (err) {
    assert.ok(err instanceof DecodeError, `decoder threw a non-DecodeError: ${(err as Error)?.stack ?? String(err)}`);
    return;
  }
  assert.ok(!containsCallable(value), 'a data-only decode returned a callable');
}

test('mutated and truncated payloads give a value or a DecodeError', () => {
  fc.assert(
    fc.property(graph, fc.array(mutation, { minLength: 1, maxLength: 4 }), (value, mutations) => {
      decodesSafely(mutate(dumpsSync(value), mutations));
    }),
    { seed: SEED + 1, numRuns: 20_000 },
  );
});

test('random bytes after a valid header give a value or a DecodeError', () => {
  const header = dumpsSync(null).subarray(0, 5);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (tail) => decodesSafely(Buffer.concat([header, tail]))),
    { seed: SEED + 2, numRuns: 30_000 },
  );
});
