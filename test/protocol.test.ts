import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import {
  FrameReader,
  FrameType,
  FrameWriter,
  PREAMBLE,
  checkHello,
  concat,
  decodeBlobResponse,
  decodeHello,
  decodeResult,
  encodeBlobResponse,
  encodeHello,
  resultHead,
  writeU32,
  type Frame,
} from '../src/executors/protocol.ts';
import { WorkerError } from '../src/index.ts';

function frame(type: number, body: Uint8Array): Uint8Array {
  const head = new Uint8Array(5);
  writeU32(head, 0, body.length + 1);
  head[4] = type;
  return concat(head, body);
}

function collect(): { frames: Frame[]; junk: string[]; reader: FrameReader } {
  const frames: Frame[] = [];
  const junk: string[] = [];
  const reader = new FrameReader((f) => frames.push({ type: f.type, body: f.body.slice() }), (j) => junk.push(Buffer.from(j).toString()));
  return { frames, junk, reader };
}

const bodies = [new Uint8Array(0), Uint8Array.of(1, 2, 3), new Uint8Array(70_000).fill(7), new TextEncoder().encode('héllo')];
const stream = concat(PREAMBLE, ...bodies.map((b, i) => frame(i + 1, b)));

const splits: { name: string; chunk: number }[] = [
  { name: 'one chunk', chunk: stream.length },
  { name: '1-byte chunks', chunk: 1 },
  { name: '7-byte chunks', chunk: 7 },
  { name: '4096-byte chunks', chunk: 4096 },
];

for (const { name, chunk } of splits) {
  test(`FrameReader reassembles frames from ${name}`, () => {
    const { frames, reader } = collect();
    for (let i = 0; i < stream.length; i += chunk) reader.push(stream.subarray(i, i + chunk));
    assert.equal(frames.length, bodies.length);
    frames.forEach((f, i) => {
      assert.equal(f.type, i + 1);
      assert.deepEqual(f.body, bodies[i]);
    });
  });
}

test('FrameReader hands bytes before the preamble to onJunk (shell banners)', () => {
  const { frames, junk, reader } = collect();
  const banner = new TextEncoder().encode('Welcome to host\nnpx: installed 1 package\n');
  const all = concat(banner, stream);
  for (let i = 0; i < all.length; i += 5) reader.push(all.subarray(i, i + 5));
  assert.equal(junk.join(''), 'Welcome to host\nnpx: installed 1 package\n');
  assert.equal(frames.length, bodies.length);
});

const hostile: { name: string; bytes: Uint8Array; code: string; junkAllowed?: boolean }[] = [
  { name: 'no preamble (strict side)', bytes: new TextEncoder().encode('GET / HTTP/1.1\r\n'), code: 'ERR_MP_PROTOCOL_GARBAGE' },
  { name: 'oversized length', bytes: concat(PREAMBLE, Uint8Array.of(0x7f, 0xff, 0xff, 0xff, 1)), code: 'ERR_MP_FRAME_TOO_LARGE' },
  { name: 'zero length', bytes: concat(PREAMBLE, Uint8Array.of(0, 0, 0, 0, 1)), code: 'ERR_MP_FRAME_TOO_LARGE' },
  { name: 'endless junk', bytes: new Uint8Array(2 << 20).fill(65), code: 'ERR_MP_PROTOCOL_GARBAGE', junkAllowed: true },
];

for (const { name, bytes, code, junkAllowed } of hostile) {
  test(`FrameReader rejects ${name}`, () => {
    const reader = new FrameReader(() => {}, junkAllowed ? () => {} : undefined);
    assert.throws(
      () => reader.push(bytes),
      (e: unknown) => e instanceof WorkerError && e.code === code,
    );
  });
}

test('HELLO round trip and version mismatch is ERR_MP_PROTOCOL_MISMATCH naming both versions', () => {
  const ours = { protocol: 1, format: 1, info: { pid: 1 } };
  const back = decodeHello(encodeHello({ protocol: 7, format: 3, info: { version: '9.9.9' } }));
  assert.deepEqual(back, { protocol: 7, format: 3, info: { version: '9.9.9' } });
  checkHello(ours, decodeHello(encodeHello(ours)), 'peer');
  assert.throws(
    () => checkHello(ours, back, 'worker s1'),
    (e: unknown) => e instanceof WorkerError && e.code === 'ERR_MP_PROTOCOL_MISMATCH' && /protocol 7.*format 3.*protocol 1.*format 1/.test(e.message) && e.worker === 'worker s1',
  );
});

test('RESULT and BLOB_RESPONSE bodies round trip; truncation is detected', () => {
  const r = decodeResult(concat(resultHead(42, 1, 123, 5), Uint8Array.of(9, 9)));
  assert.deepEqual({ ...r, payload: [...r.payload] }, { id: 42, status: 1, rssMiB: 123, versions: 5, payload: [9, 9] });
  const body = encodeBlobResponse(3, [
    ['aa', Uint8Array.of(1, 2)],
    ['bb', undefined],
  ]);
  const { reqId, blobs } = decodeBlobResponse(body);
  assert.equal(reqId, 3);
  assert.deepEqual([...blobs.get('aa')!], [1, 2]);
  assert.ok(blobs.has('bb') && blobs.get('bb') === undefined);
  assert.throws(() => decodeBlobResponse(body.subarray(0, body.length - 3)), (e: unknown) => e instanceof WorkerError && e.code === 'ERR_MP_PROTOCOL_GARBAGE');
});

test('FrameWriter respects backpressure and keeps frame order', async () => {
  const received: Uint8Array[] = [];
  let writes = 0;
  const slow = new Writable({
    highWaterMark: 1024,
    write(chunk: Buffer, _enc, cb) {
      writes++;
      received.push(chunk);
      setTimeout(cb, 1);
    },
  });
  const writer = new FrameWriter(slow);
  let sawFull = false;
  for (let i = 0; i < 50; i++) {
    if (!writer.send(FrameType.log, new Uint8Array(4000).fill(i))) {
      sawFull = true;
      await writer.ready();
    }
  }
  writer.end();
  await new Promise((r) => slow.on('finish', r));
  assert.ok(sawFull, 'send() reported a full stream');
  assert.ok(writes > 1);
  const { frames, reader } = collect();
  reader.push(concat(...received));
  assert.equal(frames.length, 50);
  frames.forEach((f, i) => assert.equal(f.body[0], i));
});
