// Hostile input: every row must end in a typed DecodeError with the expected code — never a hang, a crash,
// another exception type, a write to Object.prototype or a callable from a data-only payload.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as T from '../src/codec/tags.ts';
import { DecodeError, dumpsSync, loads, loadsSync } from '../src/index.ts';
import { containsCallable } from './fixtures/codec/describe.mjs';

const valid = {
  object: () => dumpsSync({ a: 1, b: 'two', c: [1, 2, { d: null }], e: -0, f: 2n ** 70n }),
  collections: () => {
    const m = new Map<unknown, unknown>([['k', new Set([1, 'x'])]]);
    m.set(m, [new Date(0), /re/g, new Error('e')]);
    return dumpsSync(m);
  },
  binary: () => {
    const buf = new ArrayBuffer(24);
    return dumpsSync({ buf, f: new Float64Array(buf, 8, 2), b: Buffer.from('abc'), u: new URL('https://x.y/') });
  },
  strings: () => dumpsSync(['', 'ascii', 'é😀\uD800', Symbol.for('s'), 'x'.repeat(300)]),
};

function expectDecodeError(bytes: Uint8Array, codes: readonly string[], options?: Record<string, unknown>): DecodeError {
  let err: unknown;
  try {
    loadsSync(bytes, options);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof DecodeError, `expected a DecodeError (${codes.join('|')}), got ${err === undefined ? 'a value' : String(err)}`);
  assert.ok(codes.includes(err.code), `expected ${codes.join('|')}, got ${err.code}: ${err.message}`);
  return err;
}

function concat(...parts: (Uint8Array | number[])[]): Uint8Array {
  return Buffer.concat(parts.map((p) => Buffer.from(p as Uint8Array)));
}

describe('header', () => {
  const body = valid.object();
  const rows: { name: string; bytes: Uint8Array; codes: string[] }[] = [
    { name: 'empty input', bytes: new Uint8Array(0), codes: ['ERR_MP_TRUNCATED', 'ERR_MP_BAD_MAGIC'] },
    { name: 'wrong magic', bytes: concat([0x58], body.subarray(1)), codes: ['ERR_MP_BAD_MAGIC'] },
    { name: 'JSON text', bytes: Buffer.from('{"a":1}'), codes: ['ERR_MP_BAD_MAGIC'] },
    { name: 'v8.serialize output', bytes: Buffer.from([0xff, 0x0f, 0x6f, 0x7b, 0x00]), codes: ['ERR_MP_BAD_MAGIC'] },
    ...[0, 1, T.FORMAT_VERSION - 1, T.FORMAT_VERSION + 1, 255].map((v) => ({ name: `format version ${v}`, bytes: concat(body.subarray(0, 3), [v], body.subarray(4)), codes: ['ERR_MP_BAD_VERSION'] })),
    { name: 'trailing bytes', bytes: concat(body, [0]), codes: ['ERR_MP_TRAILING_BYTES'] },
    { name: 'a payload twice', bytes: concat(body, body), codes: ['ERR_MP_TRAILING_BYTES'] },
  ];
  for (const row of rows) {
    test(row.name, async () => {
      const err = expectDecodeError(row.bytes, row.codes);
      await assert.rejects(loads(row.bytes), (e: unknown) => e instanceof DecodeError && e.code === err.code);
    });
  }
  test('input that is not bytes', () => {
    for (const input of ['MPK\x01\x00\x00\x01', null, 42, [0x4d, 0x50, 0x4b]]) {
      assert.throws(() => loadsSync(input as unknown as Uint8Array), (e: unknown) => e instanceof DecodeError && e.code === 'ERR_MP_BAD_MAGIC');
    }
    assert.equal(loadsSync(new Uint8Array(valid.object()).buffer) !== undefined, true, 'an ArrayBuffer is accepted');
  });
  test('the version error names the version and what to do', () => {
    const err = expectDecodeError(concat(body.subarray(0, 3), [7], body.subarray(4)), ['ERR_MP_BAD_VERSION']);
    assert.match(err.message, /7/);
  });
});

describe('truncated at every byte offset', () => {
  for (const [name, make] of Object.entries(valid)) {
    test(name, () => {
      const bytes = make();
      assert.doesNotThrow(() => loadsSync(bytes));
      for (let end = 0; end < bytes.length; end++) {
        // A length or count that runs past the (new) end is reported as ERR_MP_BAD_LENGTH.
        expectDecodeError(bytes.subarray(0, end), ['ERR_MP_TRUNCATED', 'ERR_MP_BAD_LENGTH']);
      }
    });
  }
});

describe('every byte value at every body offset gives a value or a DecodeError', () => {
  for (const [name, make] of Object.entries(valid)) {
    test(name, () => {
      const bytes = make();
      const copy = new Uint8Array(bytes);
      for (let at = 3; at < Math.min(bytes.length, 160); at++) {
        for (let b = 0; b < 256; b++) {
          copy[at] = b;
          try {
            const v = loadsSync(copy, { code: false });
            assert.ok(!containsCallable(v), `data-only decode yielded a callable (offset ${at}, byte ${b})`);
          } catch (e) {
            assert.ok(e instanceof DecodeError, `offset ${at}, byte ${b}: ${String(e)}`);
          }
        }
        copy[at] = bytes[at]!;
      }
    });
  }
});

describe('prototype pollution', () => {
  const rows: { name: string; value: () => unknown; proto: object | null }[] = [
    { name: 'own __proto__ key in a plain object', value: () => JSON.parse('{"__proto__": {"polluted": 1}}'), proto: Object.prototype },
    {
      name: 'own __proto__ key in a null-prototype object',
      value: () => Object.defineProperty(Object.create(null), '__proto__', { value: { polluted: 1 }, enumerable: true }),
      proto: null,
    },
    {
      name: 'nested __proto__ with constructor/prototype keys',
      value: () => JSON.parse('{"a": {"__proto__": {"polluted": 1}, "constructor": {"prototype": {"polluted": 1}}}}'),
      proto: Object.prototype,
    },
    { name: '__proto__ on an array', value: () => Object.defineProperty([1], '__proto__', { value: { polluted: 1 }, enumerable: true }), proto: Array.prototype },
    { name: '__proto__ as a Map key', value: () => new Map([['__proto__', { polluted: 1 }]]), proto: Map.prototype },
  ];
  for (const row of rows) {
    test(row.name, () => {
      const decoded = loadsSync(dumpsSync(row.value()));
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
      assert.equal(([] as unknown as Record<string, unknown>).polluted, undefined);
      assert.equal(Object.getOwnPropertyNames(Object.prototype).includes('polluted'), false);
      const holder = (row.name.startsWith('nested') ? (decoded as Record<string, unknown>).a : decoded) as object;
      assert.equal(Object.getPrototypeOf(holder), row.proto, 'the prototype was not replaced');
      if (!(holder instanceof Map)) assert.ok(Object.getOwnPropertyDescriptor(holder, '__proto__'), '__proto__ stays an own data property');
    });
  }
});

describe('nesting depth', () => {
  function chain(depth: number): unknown {
    let v: unknown = 0;
    for (let i = 0; i < depth; i++) v = [v];
    return v;
  }
  test('a payload deeper than the decoder maxDepth', () => {
    const bytes = dumpsSync(chain(300), { maxDepth: 1000 });
    assert.doesNotThrow(() => loadsSync(bytes, { maxDepth: 1000 }));
    expectDecodeError(bytes, ['ERR_MP_TOO_DEEP'], { maxDepth: 100 });
  });
  test('the decoder does not use the JS stack: 400,000 levels load at the default limit, also from a deep caller', () => {
    const bytes = new Uint8Array([...H, ...nest(400_000)]);
    const deepCaller = (n: number): unknown => (n === 0 ? loadsSync(bytes) : deepCaller(n - 1));
    let v = deepCaller(5_000);
    for (let i = 0; i < 400_000; i++) v = (v as unknown[])[0];
    assert.equal(v, null);
  });
});

// Crafted payloads, written tag by tag (src/codec/tags.ts). H is a data-only header with no sections.
const H = [...T.MAGIC, T.FORMAT_VERSION, 0, 0];
function varint(n: number): number[] {
  const out: number[] = [];
  for (; n > 0x7f; n = Math.floor(n / 128)) out.push((n % 128) | 0x80);
  out.push(n);
  return out;
}
const str = (s: string): number[] => [T.T_FIXSTR + Buffer.byteLength(s), ...Buffer.from(s)];
const int = (n: number): number[] => [T.T_INT, ...varint(n >= 0 ? n * 2 : -n * 2 - 1)]; // zigzag
/** A sparse T_ARRAY of `len` with no elements and no properties. */
const sparse = (len: number): number[] => [T.T_ARRAY, ...varint(len), 0, 0, 0, 0];
const dense = (...items: number[][]): number[] => [T.T_ARRAY_DENSE, items.length, ...items.flat()];
const reduce = (name: string, flags: number, ...rest: number[]): number[] => [T.T_REDUCE, T.R_BY_NAME | flags, ...str(name), ...rest];
const nest = (depth: number): number[] => [...new Array<number[]>(depth).fill([T.T_ARRAY_DENSE, 1]).flat(), T.T_NULL];
/** A buffer-table record of a plain buffer of `n` bytes, and of a view: kind, flags, slot, offset, length. */
const buf = (n: number): number[] => [0, ...varint(n), ...new Array<number>(n).fill(7)];
const view = (kind: number, flags: number, slot: number, off: number, len = 0): number[] => [kind, flags, ...varint(slot), ...varint(off), ...varint(len)];
const table = (buffers: number[][], views: number[][]): number[] => [T.T_TABLE, ...varint(buffers.length), ...buffers.flat(), ...varint(views.length), ...views.flat()];
const assigned = new Set(Object.entries(T).filter(([k]) => k.startsWith('T_')).map(([, v]) => v as number));
const unassigned = Array.from({ length: T.T_FIXSTR }, (_, i) => i).filter((t) => !assigned.has(t));

interface Crafted {
  readonly name: string;
  readonly body: number[];
  readonly code: string;
  readonly options?: Record<string, unknown>;
  readonly header?: number[];
}
const crafted: Crafted[] = [
  ...unassigned.map((t) => ({ name: `unassigned tag 0x${t.toString(16)}`, body: [t], code: 'ERR_MP_BAD_TAG' })),
  { name: 'unassigned tag inside an array', body: dense([T.T_NULL], [0x3f]), code: 'ERR_MP_BAD_TAG' },
  { name: 'UTF-8 string length 2^40', body: [T.T_STR8, ...varint(2 ** 40)], code: 'ERR_MP_BAD_LENGTH' },
  { name: 'UTF-16 string length 2^40', body: [T.T_STR16, ...varint(2 ** 40)], code: 'ERR_MP_BAD_LENGTH' },
  { name: 'string length one past the end', body: [T.T_STR8, 4, 0x61, 0x62, 0x63], code: 'ERR_MP_BAD_LENGTH' },
  { name: 'varint of 9 bytes', body: [T.T_STR8, ...new Array(9).fill(0xff), 0x01], code: 'ERR_MP_BAD_LENGTH' },
  { name: 'dense array count 2^40', body: [T.T_ARRAY_DENSE, ...varint(2 ** 40)], code: 'ERR_MP_BAD_LENGTH' },
  { name: 'dense array count 2^31 with 3 bytes', body: [T.T_ARRAY_DENSE, ...varint(2 ** 31), 1, 1, 1], code: 'ERR_MP_BAD_LENGTH' },
  { name: 'object key count 2^40', body: [T.T_OBJECT_SIMPLE, ...varint(2 ** 40)], code: 'ERR_MP_BAD_LENGTH' },
  { name: 'sparse array length 2^40', body: sparse(2 ** 40), code: 'ERR_MP_BAD_LENGTH' },
  { name: 'sparse array element count 2^40', body: [T.T_ARRAY, 5, ...varint(2 ** 40)], code: 'ERR_MP_BAD_LENGTH' },
  { name: 'sparse array index past its length', body: [T.T_ARRAY, 2, 1, 0, 7, T.T_NULL, 0, 0], code: 'ERR_MP_BAD_VALUE' },
  { name: 'sparse array indices out of order', body: [T.T_ARRAY, 9, 2, 0, 5, T.T_NULL, 3, T.T_NULL, 0, 0], code: 'ERR_MP_BAD_VALUE' },
  { name: 'bigint of 2^40 bytes', body: [T.T_BIGINT_POS, ...varint(2 ** 40)], code: 'ERR_MP_BAD_LENGTH' },
  { name: 'raw bytes of 2^40', body: [T.T_BYTES, ...varint(2 ** 40)], code: 'ERR_MP_BAD_LENGTH' },
  { name: 'float64 cut short', body: [T.T_FLOAT64, 0, 0, 0], code: 'ERR_MP_TRUNCATED' },
  { name: 'reference to an object that does not exist', body: [T.T_REF, 5], code: 'ERR_MP_BAD_REF' },
  { name: 'reference past the objects created so far', body: dense([T.T_OBJECT_SIMPLE, 0], [T.T_REF, 2]), code: 'ERR_MP_BAD_REF' },
  { name: 'reference to an object still being created', body: reduce('Date', 0, T.T_REF, 0), code: 'ERR_MP_BAD_REF' },
  { name: 'string table index that does not exist', body: [T.T_OBJECT_SIMPLE, 1, T.T_STRREF, 3, T.T_NULL], code: 'ERR_MP_BAD_REF' },
  { name: 'property key that is a number', body: [T.T_OBJECT_SIMPLE, 1, T.T_FIXINT + 1, T.T_NULL], code: 'ERR_MP_BAD_VALUE' },
  { name: 'unknown well-known symbol', body: [T.T_SYMBOL_WK, ...str('nope')], code: 'ERR_MP_BAD_VALUE' },
  { name: 'prototype cycle (object is its own prototype)', body: [T.T_OBJECT, T.O_PROTO, T.T_REF, 0, 0], code: 'ERR_MP_BAD_VALUE' },
  { name: 'prototype constructor that is not a function', body: [T.T_OBJECT, T.O_PROTO | T.O_PROTO_IS_CTOR, T.T_NULL, 0], code: 'ERR_MP_BAD_VALUE' },
  { name: 'accessor whose getter is data', body: [T.T_OBJECT, T.O_ATTRS, 1, ...str('x'), T.A_ACCESSOR, T.T_FIXINT, T.T_UNDEFINED], code: 'ERR_MP_BAD_VALUE' },
  { name: 'unknown reducer', body: reduce('no.such.reducer', 0, T.T_NULL), code: 'ERR_MP_UNKNOWN_REDUCER' },
  { name: 'restore function in a data-only load', body: [T.T_REDUCE, 0, T.T_NULL, dense()].flat(), code: 'ERR_MP_CODE_REFUSED', options: { code: false } },
  { name: 'restore "function" that is data', body: [T.T_REDUCE, 0, T.T_NULL, T.T_ARRAY_DENSE, 0], code: 'ERR_MP_BAD_VALUE' },
  { name: 'header says code, data-only load', header: [...T.MAGIC, T.FORMAT_VERSION, T.HEADER_HAS_CODE, 0], body: [T.T_NULL], code: 'ERR_MP_CODE_REFUSED', options: { code: false } },
  { name: 'unknown section', body: [...str('no-such-section'), 1, T.T_NULL, T.T_NULL], header: [...T.MAGIC, T.FORMAT_VERSION, 0, 1, 0], code: 'ERR_MP_UNKNOWN_SECTION' },
  { name: 'section count 2^40', header: [...T.MAGIC, T.FORMAT_VERSION, 0], body: varint(2 ** 40), code: 'ERR_MP_BAD_LENGTH' },
  // Built-in reducers get crafted arguments: each must be rejected at once (these used to hang or run out of memory).
  { name: 'Map state: sparse array of length 2^32-2', body: reduce('Map', T.R_STATE, T.T_NULL, ...sparse(2 ** 32 - 2)), code: 'ERR_MP_BAD_VALUE' },
  { name: 'Set state: sparse array of length 2^32-1', body: reduce('Set', T.R_STATE, T.T_NULL, ...sparse(2 ** 32 - 1)), code: 'ERR_MP_BAD_VALUE' },
  { name: 'Map state of odd length', body: reduce('Map', T.R_STATE, T.T_NULL, ...dense([T.T_NULL])), code: 'ERR_MP_BAD_VALUE' },
  // Native Maps and Sets: counts are checked against the bytes left, entries end with the payload, nesting meets maxDepth.
  { name: 'Map entry count 2^40', body: [T.T_MAP, ...varint(2 ** 40)], code: 'ERR_MP_BAD_LENGTH' },
  { name: 'Map entry count 2^31 with 3 bytes', body: [T.T_MAP, ...varint(2 ** 31), 1, 1, 1], code: 'ERR_MP_BAD_LENGTH' },
  { name: 'Set item count 2^40', body: [T.T_SET, ...varint(2 ** 40)], code: 'ERR_MP_BAD_LENGTH' },
  { name: 'Map entry with a key and no value', body: [T.T_MAP, 1, T.T_STR8, 1, 0x61], code: 'ERR_MP_TRUNCATED' },
  { name: 'Map whose value refers to an object that does not exist', body: [T.T_MAP, 1, T.T_NULL, T.T_REF, 4], code: 'ERR_MP_BAD_REF' },
  { name: 'Set item with an unassigned tag', body: [T.T_SET, 2, T.T_NULL, 0x3f], code: 'ERR_MP_BAD_TAG' },
  { name: 'Maps nested past maxDepth', body: [...new Array<number[]>(2_000).fill([T.T_MAP, 1, T.T_NULL]).flat(), T.T_NULL], code: 'ERR_MP_TOO_DEEP', options: { maxDepth: 1_000 } },
  { name: 'Date with its time value cut short', body: [T.T_DATE, 0, 0, 0], code: 'ERR_MP_TRUNCATED' },
  { name: 'Sets nested past maxDepth', body: [...new Array<number[]>(2_000).fill([T.T_SET, 1]).flat(), T.T_NULL], code: 'ERR_MP_TOO_DEEP', options: { maxDepth: 1_000 } },
  { name: 'Date from a sparse array of 2^28', body: reduce('Date', 0, ...sparse(2 ** 28)), code: 'ERR_MP_BAD_VALUE' },
  { name: 'RegExp from a sparse array of 2^28', body: reduce('RegExp', 0, ...dense(sparse(2 ** 28), str('g'))), code: 'ERR_MP_BAD_VALUE' },
  { name: 'RegExp with invalid flags', body: reduce('RegExp', 0, ...dense(str('a'), str('zz'))), code: 'ERR_MP_BAD_VALUE' },
  { name: 'URL from a sparse array', body: reduce('URL', 0, ...sparse(2 ** 28)), code: 'ERR_MP_BAD_VALUE' },
  { name: 'URL that does not parse', body: reduce('URL', 0, ...str('not a url')), code: 'ERR_MP_BAD_VALUE' },
  { name: 'boxed String from an object', body: reduce('BoxedString', 0, T.T_OBJECT_SIMPLE, 0), code: 'ERR_MP_BAD_VALUE' },
  { name: 'object of a shape never defined', body: [T.T_SHAPE, 0, T.T_NULL], code: 'ERR_MP_BAD_REF' },
  { name: 'object of shape #2 when one is defined', body: dense([T.T_SHAPE_DEF, 1, ...str('a'), T.T_NULL], [T.T_SHAPE, 2, T.T_NULL]), code: 'ERR_MP_BAD_REF' },
  { name: 'shape definition with 2^40 keys', body: [T.T_SHAPE_DEF, ...varint(2 ** 40)], code: 'ERR_MP_BAD_LENGTH' },
  { name: 'shape definition with a number as a key', body: [T.T_SHAPE_DEF, 1, T.T_FIXINT + 1, T.T_NULL], code: 'ERR_MP_BAD_VALUE' },
  { name: 'shaped object cut short', body: dense([T.T_SHAPE_DEF, 2, ...str('a'), ...str('b'), T.T_NULL, T.T_NULL], [T.T_SHAPE, 0, T.T_NULL]), code: 'ERR_MP_TRUNCATED' },
  // The buffer table: views and buffers reference it, and every record in it is checked before anything is made.
  { name: 'view with no buffer table', body: [T.T_VIEW, 0, 0, 0], code: 'ERR_MP_BAD_REF' },
  { name: 'buffer with no buffer table', body: [T.T_BUFFER, 0, 0, 0], code: 'ERR_MP_BAD_REF' },
  { name: 'view index past the table', body: [...table([buf(4)], [view(1, 0, 0, 4)]), T.T_VIEW, 1, 0, 0], code: 'ERR_MP_BAD_REF' },
  { name: 'buffer slot past the table', body: [...table([buf(4)], []), T.T_BUFFER, 3, 0, 0], code: 'ERR_MP_BAD_REF' },
  { name: 'table not at the start of the value', body: dense([...table([], [])]), code: 'ERR_MP_BAD_TAG' },
  { name: 'two tables', body: [...table([], []), ...table([], []), T.T_NULL], code: 'ERR_MP_BAD_TAG' },
  { name: 'buffer count 2^40', body: [T.T_TABLE, ...varint(2 ** 40)], code: 'ERR_MP_BAD_LENGTH' },
  { name: 'buffer of 2^40 bytes', body: [T.T_TABLE, 1, 0, ...varint(2 ** 40)], code: 'ERR_MP_BAD_LENGTH' },
  { name: 'buffer with unknown flags', body: [T.T_TABLE, 1, 0x80, 0, 0, T.T_NULL], code: 'ERR_MP_BAD_VALUE' },
  { name: 'resizable buffer with a 2^41 max length', body: [T.T_TABLE, 1, T.B_RESIZABLE, 0, ...varint(2 ** 41), 0, T.T_NULL], code: 'ERR_MP_BAD_VALUE' },
  { name: 'resizable buffer with max below its length', body: [T.T_TABLE, 1, T.B_RESIZABLE, 2, 1, 7, 7, 0, T.T_NULL], code: 'ERR_MP_BAD_VALUE' },
  { name: 'view count 2^40', body: [T.T_TABLE, 0, ...varint(2 ** 40)], code: 'ERR_MP_BAD_LENGTH' },
  { name: 'view of a buffer that does not exist', body: [...table([buf(4)], [view(1, 0, 5, 0, 1)]), T.T_NULL], code: 'ERR_MP_BAD_REF' },
  { name: 'view of an unknown kind', body: [...table([buf(4)], [view(13, 0, 0, 0, 1)]), T.T_NULL], code: 'ERR_MP_BAD_VALUE' },
  { name: 'view with unknown flags', body: [...table([buf(4)], [view(1, 0x40, 0, 0, 1)]), T.T_NULL], code: 'ERR_MP_BAD_VALUE' },
  { name: 'Uint8Array past the end of its buffer', body: [...table([buf(2)], [view(1, 0, 0, 1, 9)]), T.T_NULL], code: 'ERR_MP_BAD_VALUE' },
  { name: 'Float64Array with a 2^40 length', body: [...table([buf(8)], [view(8, 0, 0, 0, 2 ** 40)]), T.T_NULL], code: 'ERR_MP_BAD_VALUE' },
  { name: 'Float64Array at an unaligned offset', body: [...table([buf(16)], [view(8, 0, 0, 3, 1)]), T.T_NULL], code: 'ERR_MP_BAD_VALUE' },
  { name: 'view offset past its buffer', body: [...table([buf(4)], [view(12, 0, 0, 9, 0)]), T.T_NULL], code: 'ERR_MP_BAD_VALUE' },
  { name: 'length-tracking view of a fixed buffer', body: [...table([buf(8)], [view(1, T.VF_TRACKING, 0, 0, 0)]), T.T_NULL], code: 'ERR_MP_BAD_VALUE' },
  { name: 'view with an index key among its properties', body: [...table([buf(4)], [view(1, 0, 0, 0, 4)]), T.T_VIEW, 0, T.O_ATTRS, 1, ...str('0'), 0, T.T_NULL], code: 'ERR_MP_BAD_VALUE' },
  { name: 'nesting one level deeper than the default maxDepth (500,000)', body: nest(500_001), code: 'ERR_MP_TOO_DEEP' },
  { name: 'nesting 100,001 deep with maxDepth 100,000', body: nest(100_001), code: 'ERR_MP_TOO_DEEP', options: { maxDepth: 100_000 } },
  {
    name: 'reducer arguments nested past maxDepth (Map state)',
    body: reduce('Map', T.R_STATE, T.T_NULL, ...nest(2_000)),
    code: 'ERR_MP_TOO_DEEP',
    options: { maxDepth: 1_000 },
  },
];

describe('crafted payloads', () => {
  for (const row of crafted) {
    test(row.name, async () => {
      const bytes = new Uint8Array([...(row.header ?? H), ...row.body]);
      const err = expectDecodeError(bytes, [row.code], row.options);
      assert.equal(typeof err.offset === 'number' || err.offset === undefined, true);
      await assert.rejects(loads(bytes, row.options), (e: unknown) => e instanceof DecodeError && e.code === row.code);
    });
  }
  test('the crafting helpers make valid payloads', () => {
    assert.deepEqual(loadsSync(new Uint8Array([...H, ...dense([T.T_SHAPE_DEF, 2, ...str('a'), ...str('b'), ...int(1), ...int(2)], [T.T_SHAPE, 0, ...int(3), ...int(4)])])), [{ a: 1, b: 2 }, { a: 3, b: 4 }]);
    const views = loadsSync(new Uint8Array([...H, ...table([buf(16)], [view(1, 0, 0, 4, 2), view(8, 0, 0, 8, 1)]), ...dense([T.T_VIEW, 0, 0, 0], [T.T_VIEW, 1, 0, 0], [T.T_BUFFER, 0, 0, 0])])) as [Uint8Array, Float64Array, ArrayBuffer];
    assert.deepEqual([views[0].byteOffset, views[0].length, views[1].byteOffset], [4, 2, 8]);
    assert.ok(views[0].buffer === views[2] && views[1].buffer === views[2]);
    assert.deepEqual(loadsSync(new Uint8Array([...H, ...dense(int(-3), str('ab'), sparse(3))])), [-3, 'ab', [, , ,]]); // eslint-disable-line no-sparse-arrays
    const m = loadsSync(new Uint8Array([...H, ...reduce('Map', T.R_STATE, T.T_NULL, ...dense(str('k'), int(1)))]));
    assert.deepEqual(m, new Map([['k', 1]]));
    assert.deepEqual(loadsSync(new Uint8Array([...H, T.T_MAP, 1, ...str('k'), ...int(1)])), new Map([['k', 1]]));
    assert.deepEqual(loadsSync(new Uint8Array([...H, T.T_SET, 2, ...str('k'), ...int(1)])), new Set(['k', 1]));
    assert.deepEqual(loadsSync(new Uint8Array([...H, T.T_DATE, ...new Uint8Array(new Float64Array([5]).buffer)])), new Date(5));
  });
});

describe('data-only payloads never yield a callable', () => {
  test('every valid payload above, loaded with { code: false }', () => {
    for (const make of Object.values(valid)) assert.equal(containsCallable(loadsSync(make(), { code: false })), false);
  });
});
