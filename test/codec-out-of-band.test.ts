// Out-of-band buffers: `dumps({ outOfBand })` leaves the buffers its hook claims out of the payload, and
// `loads({ outOfBand: list })` puts them back, so a payload can cross to another thread with its binary data moved
// (a transfer list) or shared (SharedArrayBuffer) instead of copied. Each row goes through a real MessageChannel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageChannel } from 'node:worker_threads';
import { dumps, loads } from '../src/index.ts';

/** Posts `[payload, list]` through a real port, moving `transfer`, and resolves with what arrived. */
function post(payload: Uint8Array, list: ArrayBufferLike[], transfer: ArrayBuffer[]): Promise<[Uint8Array, ArrayBufferLike[]]> {
  const { port1, port2 } = new MessageChannel();
  return new Promise((resolve) => {
    port2.once('message', (m: [Uint8Array, ArrayBufferLike[]]) => {
      port1.close();
      resolve(m);
    });
    port1.postMessage([payload, list], transfer);
  });
}

interface Row {
  readonly name: string;
  make(): unknown;
  /** Which buffers the hook claims, and which of those move. */
  claim(b: ArrayBufferLike): 'share' | 'move' | undefined;
  check(sent: unknown, got: unknown): void;
}

const big = (n: number) => {
  const f = new Float64Array(n);
  for (let i = 0; i < n; i++) f[i] = i / 2;
  return f;
};

const rows: Row[] = [
  {
    name: 'a SharedArrayBuffer arrives shared: writes on one side are seen on the other',
    make: () => ({ sab: new SharedArrayBuffer(16) }),
    claim: (b) => (b instanceof SharedArrayBuffer ? 'share' : undefined),
    check(sent, got) {
      const s = (sent as { sab: SharedArrayBuffer }).sab;
      const g = (got as { sab: SharedArrayBuffer }).sab;
      new Int32Array(g)[1] = 7;
      assert.equal(new Int32Array(s)[1], 7);
    },
  },
  {
    name: 'a moved buffer keeps its views, offsets and lengths, and is detached on the sender',
    make: () => {
      const f = big(1 << 16);
      return { f, u: new Uint8Array(f.buffer, 8, 24), d: new DataView(f.buffer, 16, 8) };
    },
    claim: (b) => (b.byteLength >= 65536 ? 'move' : undefined),
    check(sent, got) {
      const g = got as { f: Float64Array; u: Uint8Array; d: DataView };
      assert.equal((sent as { f: Float64Array }).f.byteLength, 0, 'detached on the sender');
      assert.equal(g.f.length, 1 << 16);
      assert.equal(g.f[1000], 500);
      assert.equal(g.u.buffer, g.f.buffer);
      assert.equal(g.d.buffer, g.f.buffer);
      assert.deepEqual([g.u.byteOffset, g.u.length, g.d.byteOffset, g.d.byteLength], [8, 24, 16, 8]);
    },
  },
  {
    name: 'buffers the hook does not claim travel in the payload, beside the ones it does',
    make: () => ({ small: Buffer.from('small'), sab: new SharedArrayBuffer(8), ab: new ArrayBuffer(4) }),
    claim: (b) => (b instanceof SharedArrayBuffer ? 'share' : undefined),
    check(sent, got) {
      const g = got as { small: Buffer; sab: SharedArrayBuffer; ab: ArrayBuffer };
      assert.equal(g.small.toString(), 'small');
      assert.ok(Buffer.isBuffer(g.small));
      assert.equal(g.ab.byteLength, 4);
      assert.notEqual(g.ab, (sent as { ab: ArrayBuffer }).ab);
      assert.ok(g.sab instanceof SharedArrayBuffer);
    },
  },
  {
    name: 'a growable SharedArrayBuffer stays growable and shared',
    make: () => ({ g: new (SharedArrayBuffer as unknown as new (n: number, o: object) => SharedArrayBuffer)(8, { maxByteLength: 64 }) }),
    claim: () => 'share',
    check(sent, got) {
      const g = (got as { g: SharedArrayBuffer & { grow(n: number): void; growable: boolean } }).g;
      assert.ok(g.growable);
      g.grow(32);
      assert.equal((sent as { g: SharedArrayBuffer }).g.byteLength, 32);
    },
  },
];

for (const row of rows) {
  test(row.name, async () => {
    const value = row.make();
    const list: ArrayBufferLike[] = [];
    const moved: ArrayBuffer[] = [];
    const payload = await dumps(value, {
      outOfBand: (b) => {
        const how = row.claim(b);
        if (!how) return undefined;
        if (how === 'move') moved.push(b as ArrayBuffer);
        return list.push(b) - 1;
      },
    });
    const [bytes, arrived] = await post(payload, list, moved);
    row.check(value, await loads(bytes, { outOfBand: arrived }));
  });
}

const failures: { name: string; list: (b: ArrayBufferLike) => ArrayBufferLike[] | undefined; code: string; message: RegExp }[] = [
  { name: 'no list given', list: () => undefined, code: 'ERR_MP_OUT_OF_BAND_MISSING', message: /buffer #0 travels beside the payload/ },
  { name: 'a list too short', list: () => [], code: 'ERR_MP_OUT_OF_BAND_MISSING', message: /buffer #0/ },
  { name: 'an ArrayBuffer where a SharedArrayBuffer was sent', list: () => [new ArrayBuffer(16)], code: 'ERR_MP_BAD_VALUE', message: /should be a SharedArrayBuffer/ },
  { name: 'a buffer of another length', list: () => [new SharedArrayBuffer(8)], code: 'ERR_MP_BAD_VALUE', message: /has 8 bytes, the payload expects 16/ },
  { name: 'not a buffer at all', list: () => [{} as ArrayBufferLike], code: 'ERR_MP_BAD_VALUE', message: /not an ArrayBuffer/ },
];

for (const f of failures) {
  test(`loads refuses out-of-band buffers with a typed error: ${f.name}`, async () => {
    const sab = new SharedArrayBuffer(16);
    const payload = await dumps({ view: new Int32Array(sab) }, { outOfBand: () => 0 });
    await assert.rejects(loads(payload, { outOfBand: f.list(sab) }), (e: Error & { code?: string }) => e.code === f.code && f.message.test(e.message));
  });
}

test('a payload with no hook is unchanged: every buffer travels inside it', async () => {
  const value = { sab: new SharedArrayBuffer(4), f: big(10) };
  const a = await dumps(value);
  const b = await dumps(value, { outOfBand: () => undefined });
  assert.deepEqual(b, a);
});
