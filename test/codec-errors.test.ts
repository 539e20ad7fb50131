// Values that must NOT serialize: each row puts the bad value at root.users[3].conn and asserts the typed
// error (class, code, path, and the formatted path in the message), for dumps and dumpsSync.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { opendirSync, unwatchFile, watch, watchFile } from 'node:fs';
import { open } from 'node:fs/promises';
import { Session } from 'node:inspector';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import { Socket, createServer } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BroadcastChannel, MessageChannel, Worker } from 'node:worker_threads';
import { EncodeError, ModulePickleError, Registry, defaultRegistry, dumps, dumpsSync, formatPath, loads, loadsSync } from '../src/index.ts';
import { builtinRegistry } from '../src/codec/index.ts';

interface Row {
  readonly name: string;
  /** Builds the bad value and a cleanup for live resources. */
  readonly make: () => Promise<{ value: unknown; cleanup?: () => unknown }> | { value: unknown; cleanup?: () => unknown };
  readonly code: string;
  readonly options?: Record<string, unknown>;
  /** Expected path; defaults to the standard `root.users[3].conn`. */
  readonly path?: readonly (string | number | symbol | { label: string })[];
}

const here = fileURLToPath(import.meta.url);
const at = ['users', 3, 'conn'] as const;
/** Where an instance's class is reached: the prototype travels as its constructor. */
const ctor = [...at, { label: '.constructor' }];
const wrap = (conn: unknown): unknown => ({ users: [{}, {}, { name: 'c' }, { name: 'd', conn }] });
const plain = (value: unknown) => () => ({ value });

/** A registry with the built-in types only: the codec as it is without the function layer. */
const codecOnly = new Registry(builtinRegistry);

const unsupported: Row[] = [
  { name: 'WeakMap', make: plain(new WeakMap()), code: 'ERR_MP_UNSUPPORTED_TYPE' },
  { name: 'WeakSet', make: plain(new WeakSet()), code: 'ERR_MP_UNSUPPORTED_TYPE' },
  { name: 'WeakRef', make: plain(new WeakRef({})), code: 'ERR_MP_UNSUPPORTED_TYPE' },
  { name: 'FinalizationRegistry', make: plain(new FinalizationRegistry(() => {})), code: 'ERR_MP_UNSUPPORTED_TYPE' },
  // Built-in classes whose state lives in internal slots: never an empty shell.
  { name: 'Intl.NumberFormat', make: plain(new Intl.NumberFormat('en')), code: 'ERR_MP_UNSUPPORTED_TYPE' },
  { name: 'TextEncoder', make: plain(new TextEncoder()), code: 'ERR_MP_UNSUPPORTED_TYPE' },
  { name: 'TextDecoder', make: plain(new TextDecoder()), code: 'ERR_MP_UNSUPPORTED_TYPE' },
  { name: 'Blob', make: plain(new Blob(['x'])), code: 'ERR_MP_UNSUPPORTED_TYPE' },
  { name: 'AbortSignal', make: plain(new AbortController().signal), code: 'ERR_MP_UNSUPPORTED_TYPE' },
  { name: 'Promise', make: plain(Promise.resolve(1)), code: 'ERR_MP_UNSUPPORTED_TYPE' },
  { name: 'generator object', make: plain((function* gen() { yield 1; })()), code: 'ERR_MP_UNSUPPORTED_TYPE' },
  { name: 'async generator object', make: plain((async function* agen() { yield 1; })()), code: 'ERR_MP_UNSUPPORTED_TYPE' },
  { name: 'Proxy of an object', make: plain(new Proxy({}, {})), code: 'ERR_MP_PROXY' },
  { name: 'Proxy of an array', make: plain(new Proxy([1], {})), code: 'ERR_MP_PROXY' },
  { name: 'revoked Proxy', make: () => { const p = Proxy.revocable({}, {}); p.revoke(); return { value: p.proxy }; }, code: 'ERR_MP_PROXY' },
];

const liveHandles: Row[] = [
  { name: 'net.Socket', make: () => { const s = new Socket(); return { value: s, cleanup: () => s.destroy() }; }, code: 'ERR_MP_LIVE_HANDLE' },
  { name: 'net.Server', make: () => { const s = createServer(); return { value: s, cleanup: () => s.close() }; }, code: 'ERR_MP_LIVE_HANDLE' },
  { name: 'Readable stream', make: () => { const s = new Readable({ read() {} }); return { value: s, cleanup: () => s.destroy() }; }, code: 'ERR_MP_LIVE_HANDLE' },
  { name: 'PassThrough stream', make: () => { const s = new PassThrough(); return { value: s, cleanup: () => s.destroy() }; }, code: 'ERR_MP_LIVE_HANDLE' },
  { name: 'process.stdout', make: plain(process.stdout), code: 'ERR_MP_LIVE_HANDLE' },
  { name: 'timeout', make: () => { const t = setTimeout(() => {}, 60_000); return { value: t, cleanup: () => clearTimeout(t) }; }, code: 'ERR_MP_LIVE_HANDLE' },
  { name: 'interval', make: () => { const t = setInterval(() => {}, 60_000); return { value: t, cleanup: () => clearInterval(t) }; }, code: 'ERR_MP_LIVE_HANDLE' },
  { name: 'immediate', make: () => { const t = setImmediate(() => {}); return { value: t, cleanup: () => clearImmediate(t) }; }, code: 'ERR_MP_LIVE_HANDLE' },
  { name: 'MessagePort', make: () => { const c = new MessageChannel(); return { value: c.port1, cleanup: () => { c.port1.close(); c.port2.close(); } }; }, code: 'ERR_MP_LIVE_HANDLE' },
  { name: 'file handle', make: async () => { const fh = await open(here, 'r'); return { value: fh, cleanup: () => fh.close() }; }, code: 'ERR_MP_LIVE_HANDLE' },
  { name: 'UDP socket', make: () => { const s = createSocket('udp4'); return { value: s, cleanup: () => s.close() }; }, code: 'ERR_MP_LIVE_HANDLE' },
  { name: 'fs.watch watcher', make: () => { const w = watch(tmpdir()); return { value: w, cleanup: () => w.close() }; }, code: 'ERR_MP_LIVE_HANDLE' },
  {
    name: 'fs.watchFile watcher',
    make: () => { const w = watchFile(here, () => {}); return { value: w, cleanup: () => unwatchFile(here) }; },
    code: 'ERR_MP_LIVE_HANDLE',
  },
  { name: 'directory handle', make: () => { const d = opendirSync(tmpdir()); return { value: d, cleanup: () => d.closeSync() }; }, code: 'ERR_MP_LIVE_HANDLE' },
  {
    name: 'readline interface',
    make: () => { const input = new PassThrough(); const rl = createInterface({ input }); return { value: rl, cleanup: () => { rl.close(); input.destroy(); } }; },
    code: 'ERR_MP_LIVE_HANDLE',
  },
  { name: 'BroadcastChannel', make: () => { const b = new BroadcastChannel('mp-test'); return { value: b, cleanup: () => b.close() }; }, code: 'ERR_MP_LIVE_HANDLE' },
  { name: 'web ReadableStream', make: plain(new ReadableStream()), code: 'ERR_MP_LIVE_HANDLE' },
  { name: 'inspector session', make: plain(new Session()), code: 'ERR_MP_LIVE_HANDLE' },
  {
    name: 'worker thread',
    make: () => { const w = new Worker('setInterval(() => {}, 1000)', { eval: true }); return { value: w, cleanup: () => w.terminate() }; },
    code: 'ERR_MP_LIVE_HANDLE',
  },
  {
    name: 'child process',
    make: () => {
      const cp = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
      return { value: cp, cleanup: () => new Promise((r) => { cp.once('exit', r); cp.kill(); }) };
    },
    code: 'ERR_MP_LIVE_HANDLE',
  },
];

class Plain {
  a = 1;
}
class MyMap extends Map<unknown, unknown> {}
class MyError extends Error {}
class MyArray extends Array<unknown> {}

const needFunctions: Row[] = [
  { name: 'arrow function', make: plain(() => 1), code: 'ERR_MP_NO_FUNCTION_LAYER' },
  { name: 'async function', make: plain(async function named() {}), code: 'ERR_MP_NO_FUNCTION_LAYER' },
  { name: 'class', make: plain(Plain), code: 'ERR_MP_NO_FUNCTION_LAYER' },
  { name: 'bound function', make: plain(function f() {}.bind(null)), code: 'ERR_MP_NO_FUNCTION_LAYER' },
  { name: 'class instance', make: plain(new Plain()), code: 'ERR_MP_NO_FUNCTION_LAYER', path: ctor },
  { name: 'subclass of Map (never a silent plain Map)', make: plain(new MyMap([[1, 2]])), code: 'ERR_MP_NO_FUNCTION_LAYER', path: ctor },
  { name: 'subclass of Error', make: plain(new MyError('x')), code: 'ERR_MP_NO_FUNCTION_LAYER', path: ctor },
  { name: 'subclass of Array', make: plain(MyArray.from([1])), code: 'ERR_MP_NO_FUNCTION_LAYER', path: ctor },
  {
    name: 'accessor property',
    make: () => ({ value: { get live() { return 1; } } }),
    code: 'ERR_MP_NO_FUNCTION_LAYER',
    path: [...at, { label: '[get live]' }],
  },
  {
    name: 'accessor element of an array (the getter never runs)',
    make: () => ({ value: Object.defineProperty([1, 2], 1, { get: () => assert.fail('getter ran during encoding'), enumerable: true, configurable: true }) }),
    code: 'ERR_MP_NO_FUNCTION_LAYER',
    path: [...at, { label: '[get 1]' }],
  },
  {
    name: 'own size getter on a Map (kept as a property: the getter never runs)',
    make: () => ({ value: Object.defineProperty(new Map([['k', 1]]), 'size', { get: () => assert.fail('getter ran during encoding'), configurable: true }) }),
    code: 'ERR_MP_NO_FUNCTION_LAYER',
    path: [...at, { label: '[get size]' }],
  },
  {
    name: 'own Symbol.iterator on a Set (kept as a property: it never runs)',
    make: () => ({ value: Object.defineProperty(new Set([1]), Symbol.iterator, { value: () => assert.fail('iterator ran during encoding') }) }),
    code: 'ERR_MP_NO_FUNCTION_LAYER',
    path: [...at, Symbol.iterator],
  },
  {
    name: 'own getTime on a Date (kept as a property: it never runs)',
    make: () => ({ value: Object.assign(new Date(0), { getTime: () => assert.fail('getTime ran during encoding') }) }),
    code: 'ERR_MP_NO_FUNCTION_LAYER',
    path: [...at, 'getTime'],
  },
];

function chain(depth: number): unknown {
  let v: unknown = 'bottom';
  for (let i = 0; i < depth; i++) v = { v };
  return v;
}
const throwing = new Registry(defaultRegistry);
class Exploding {}
throwing.register(Exploding, { name: 'test.exploding', reduce: () => { throw new Error('boom'); }, restore: () => new Exploding() });

const limits: Row[] = [
  { name: 'deeper than maxDepth', make: plain(chain(50)), code: 'ERR_MP_TOO_DEEP', options: { maxDepth: 20 } },
  { name: 'deeper than the default maxDepth (500,000)', make: plain(chain(500_001)), code: 'ERR_MP_TOO_DEEP' },
  { name: 'reducer that throws', make: plain(new Exploding()), code: 'ERR_MP_REDUCER_FAILED', options: { registry: throwing } },
  {
    name: 'detached ArrayBuffer',
    make: () => { const ab = new ArrayBuffer(8); structuredClone(ab, { transfer: [ab] }); return { value: ab }; },
    code: 'ERR_MP_UNSUPPORTED_TYPE',
  },
  {
    name: 'view of a detached ArrayBuffer',
    make: () => { const ab = new ArrayBuffer(8); const v = new Uint8Array(ab); structuredClone(ab, { transfer: [ab] }); return { value: v }; },
    code: 'ERR_MP_UNSUPPORTED_TYPE',
  },
  {
    name: 'view that may track the length of a growable SharedArrayBuffer',
    make: () => {
      const sab = new (SharedArrayBuffer as unknown as new (n: number, o: object) => SharedArrayBuffer)(8, { maxByteLength: 16 });
      return { value: new Uint8Array(sab) };
    },
    code: 'ERR_MP_UNSUPPORTED_TYPE',
  },
];

async function expectEncodeError(row: Row, run: (v: unknown, o?: Record<string, unknown>) => unknown): Promise<EncodeError> {
  const { value, cleanup } = await row.make();
  try {
    await run(wrap(value), row.options);
  } catch (err) {
    assert.ok(err instanceof EncodeError, `expected an EncodeError, got ${String(err)}`);
    assert.ok(err instanceof ModulePickleError);
    assert.equal(err.code, row.code, err.message);
    return err;
  } finally {
    await cleanup?.();
  }
  assert.fail(`${row.name} was encoded; expected ${row.code}`);
}

const tables: Record<string, Row[]> = { unsupported, liveHandles, needFunctions, limits };
for (const [table, rows] of Object.entries(tables)) {
  describe(`codec refuses: ${table}`, () => {
    for (const row of rows) {
      // Without the function layer, code must fail clearly (never a silent plain Map for a Map subclass).
      const r = table === 'needFunctions' ? { ...row, options: { ...row.options, registry: codecOnly } } : row;
      for (const [mode, run] of [['dumps', dumps], ['dumpsSync', dumpsSync]] as const) {
        test(`${row.name} (${mode})`, async () => {
          const err = await expectEncodeError(r, run);
          if (row.code === 'ERR_MP_TOO_DEEP') {
            assert.deepEqual(err.path.slice(0, 3), [...at]);
          } else {
            assert.deepEqual(err.path, row.path ?? [...at]);
          }
          assert.ok(err.message.includes(formatPath(err.path)), `message names the path: ${err.message}`);
          if (row.name === 'reducer that throws') assert.match(String((err.cause as Error | undefined)?.message), /boom/);
        });
      }
    }
  });
}

test('the encoder does not use the JS stack: 200,000 levels encode from a deep caller', () => {
  const value = chain(200_000);
  const deepCaller = (n: number): Uint8Array => (n === 0 ? dumpsSync(value) : deepCaller(n - 1));
  let back = loadsSync(deepCaller(5_000));
  for (let i = 0; i < 200_000; i++) back = (back as { v: unknown }).v;
  assert.equal(back, 'bottom');
});

test('process and globalThis travel by reference and load as the receiver\'s own', async () => {
  const back = (await loads(await dumps({ p: process, g: globalThis, m: Math }))) as Record<string, unknown>;
  assert.equal(back.p, process);
  assert.equal(back.g, globalThis);
  assert.equal(back.m, Math);
});

test('a subclass of a built-in never comes back as the plain built-in', () => {
  let bytes: Uint8Array;
  try {
    bytes = dumpsSync(new MyMap([[1, 2]]));
  } catch (err) {
    assert.ok(err instanceof EncodeError);
    assert.match(err.message, /MyMap|subclass|class/i, 'the message says what the value is');
    return;
  }
  const decoded = loadsSync(bytes);
  assert.notEqual(Object.getPrototypeOf(decoded), Map.prototype);
});

test('refusals come before matchers: a catch-all matcher does not pickle a live handle or a WeakMap', () => {
  const catchAll = new Registry(defaultRegistry).registerMatcher(() => true, {
    name: 'test.anything', reduce: () => null, restore: () => ({}),
  });
  const socket = new Socket();
  try {
    for (const [value, code] of [[socket, 'ERR_MP_LIVE_HANDLE'], [new WeakMap(), 'ERR_MP_UNSUPPORTED_TYPE'], [Promise.resolve(), 'ERR_MP_UNSUPPORTED_TYPE']] as const) {
      assert.throws(() => dumpsSync({ value }, { registry: catchAll }), (e: unknown) => e instanceof EncodeError && e.code === code);
    }
    assert.ok(dumpsSync(new Plain(), { registry: catchAll }) instanceof Uint8Array, 'the matcher still takes other instances');
  } finally {
    socket.destroy();
  }
});
