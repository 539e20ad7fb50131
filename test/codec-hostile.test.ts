// Hostile input: every row must end in a typed DecodeError with the expected code — never a hang, a crash,
// another exception type, a write to Object.prototype or a callable from a data-only payload.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
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
    ...[0, 2, 9, 255].map((v) => ({ name: `format version ${v}`, bytes: concat(body.subarray(0, 3), [v], body.subarray(4)), codes: ['ERR_MP_BAD_VERSION'] })),
    { name: 'trailing bytes', bytes: concat(body, [0]), codes: ['ERR_MP_TRAILING_BYTES'] },
    { name: 'a payload twice', bytes: concat(body, body), codes: ['ERR_MP_TRAILING_BYTES'] },
  ];
  for (const row of rows) {
    test(row.name, async () => {
      const err = expectDecodeError(row.bytes, row.codes);
      await assert.rejects(loads(row.bytes), (e: unknown) => e instanceof DecodeError && e.code === err.code);
    });
  }
  test('the version error names the version and what to do', () => {
    const err = expectDecodeError(concat(body.subarray(0, 3), [2], body.subarray(4)), ['ERR_MP_BAD_VERSION']);
    assert.match(err.message, /2/);
  });
});

describe('truncated at every byte offset', () => {
  for (const [name, make] of Object.entries(valid)) {
    test(name, () => {
      const bytes = make();
      assert.doesNotThrow(() => loadsSync(bytes));
      for (let end = 0; end < bytes.length; end++) {
        // A prefix shorter than the magic may be reported as bad magic.
        expectDecodeError(bytes.subarray(0, end), end < 3 ? ['ERR_MP_TRUNCATED', 'ERR_MP_BAD_MAGIC'] : ['ERR_MP_TRUNCATED']);
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
});
