/**
 * The worker wire protocol, shared by every transport (pool pipes, stdio of `docker`/`ssh`/`kubectl`).
 *
 * Stream layout, each direction: an 8-byte preamble {@link PREAMBLE}, then frames:
 *
 *   u32 BE length (of everything after this field) | u8 type | body
 *
 * The first frame each side sends is HELLO (`u16 protocol | u16 format | JSON info`). Its layout never changes, so
 * two versions can always tell each other apart; a mismatch is `WorkerError ERR_MP_PROTOCOL_MISMATCH` at connect
 * time. Bytes a worker's host prints before its preamble (shell banners, `npx` notices) are handed to `onJunk`.
 * Writers coalesce the frames of one tick into one `write()` and respect backpressure (`write()` returning false).
 */
import type { Writable } from 'node:stream';
import { WorkerError } from '../errors.ts';

/** Version of this framing and of the message bodies below. */
export const PROTOCOL_VERSION = 1;
/** Written once by each side before its first frame. */
export const PREAMBLE: Uint8Array = Uint8Array.from([0x89, 0x4d, 0x50, 0x57, 0x49, 0x52, 0x45, 0x0a]); // \x89MPWIRE\n
/** Largest frame accepted (1 GiB); a larger length means a corrupted stream. */
export const MAX_FRAME = 1 << 30;
/** Junk accepted before the preamble before giving up. */
export const MAX_JUNK = 1 << 20;

/** Frame type byte. */
export const FrameType = {
  hello: 1,
  task: 2,
  result: 3,
  cancel: 4,
  blobRequest: 5,
  blobResponse: 6,
  log: 7,
  shutdown: 8,
  fatal: 9,
} as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

/** Status byte of a RESULT frame. */
export const ResultStatus = { ok: 0, error: 1, needFunction: 2, cancelled: 3 } as const;
export type ResultStatus = (typeof ResultStatus)[keyof typeof ResultStatus];

/** One decoded frame. `body` is a view into the receive buffer: copy it if it must outlive the callback. */
export interface Frame {
  readonly type: number;
  readonly body: Uint8Array;
}

/** Incremental frame parser: feed it chunks, it calls `onFrame` for every complete frame. */
export class FrameReader {
  #buf: Uint8Array = new Uint8Array(0);
  #parts: Uint8Array[] = [];
  #have = 0;
  #need = 0;
  #seenPreamble = false;
  #junk = 0;
  readonly #onFrame: (frame: Frame) => void;
  readonly #onJunk: ((bytes: Uint8Array) => void) | undefined;

  /** `onJunk` set: bytes before the preamble are tolerated and passed on; unset: the stream must start with it. */
  constructor(onFrame: (frame: Frame) => void, onJunk?: (bytes: Uint8Array) => void) {
    this.#onFrame = onFrame;
    this.#onJunk = onJunk;
  }

  /** Consumes one chunk. @throws WorkerError ERR_MP_PROTOCOL_GARBAGE, ERR_MP_FRAME_TOO_LARGE */
  push(chunk: Uint8Array): void {
    // A large frame arrives in many chunks: collect them and concatenate once it is complete (no quadratic copying).
    if (this.#need > 0) {
      this.#parts.push(chunk);
      this.#have += chunk.length;
      if (this.#have < this.#need) return;
      chunk = concat(...this.#parts);
      this.#parts = [];
      this.#have = 0;
      this.#need = 0;
    } else if (this.#buf.length > 0) {
      chunk = concat(this.#buf, chunk);
    }
    const buf = chunk;
    let pos = 0;
    if (!this.#seenPreamble) {
      const at = indexOf(buf, PREAMBLE);
      if (at < 0) {
        // Keep a possible partial preamble at the end; the rest is junk.
        const keep = Math.min(buf.length, PREAMBLE.length - 1);
        this.#junkOut(buf.subarray(0, buf.length - keep));
        this.#buf = buf.slice(buf.length - keep);
        return;
      }
      if (at > 0) this.#junkOut(buf.subarray(0, at));
      this.#seenPreamble = true;
      pos = at + PREAMBLE.length;
    }
    while (buf.length - pos >= 5) {
      const len = readU32(buf, pos);
      if (len < 1 || len > MAX_FRAME) {
        throw new WorkerError('ERR_MP_FRAME_TOO_LARGE', `frame length ${len} is out of range (1..${MAX_FRAME}): the stream is corrupted; if the worker's user code writes to file descriptor 1 directly (a child process with stdio 'inherit'), pipe it instead`);
      }
      if (buf.length - pos - 4 < len) {
        if (len > 1 << 16) {
          this.#parts = [buf.subarray(pos)];
          this.#have = buf.length - pos;
          this.#need = 4 + len;
          this.#buf = new Uint8Array(0);
          return;
        }
        break;
      }
      const type = buf[pos + 4]!;
      const body = buf.subarray(pos + 5, pos + 4 + len);
      pos += 4 + len;
      this.#onFrame({ type, body });
    }
    // Copy the remainder: the caller may reuse `chunk`, and a subarray would pin a large buffer.
    this.#buf = pos >= buf.length ? new Uint8Array(0) : buf.slice(pos);
  }

  #junkOut(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (!this.#onJunk) {
      throw new WorkerError('ERR_MP_PROTOCOL_GARBAGE', 'the peer did not start with the modulepickle preamble: it is not a modulepickle worker/client, or something else writes to its stdout');
    }
    this.#junk += bytes.length;
    if (this.#junk > MAX_JUNK) {
      throw new WorkerError('ERR_MP_PROTOCOL_GARBAGE', `no modulepickle preamble in the first ${MAX_JUNK} bytes of the worker's stdout: is the command really 'modulepickle worker --stdio'?`);
    }
    this.#onJunk(bytes);
  }
}

/**
 * Frame writer with tick coalescing and backpressure. `send` never blocks; `ready()` resolves once the
 * underlying stream has drained (await it before producing more when `send` returned false).
 */
export class FrameWriter {
  readonly #out: Writable;
  // Bound at construction: the worker later replaces `process.stdout.write` for user code.
  readonly #write: (chunk: Uint8Array) => boolean;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #scheduled = false;
  #blocked = false;
  #waiters: (() => void)[] = [];
  #closed = false;
  /** Bytes written so far (frames and preamble), for "what travelled" reports. */
  bytesWritten = 0;

  constructor(out: Writable) {
    this.#out = out;
    this.#write = out.write.bind(out) as (chunk: Uint8Array) => boolean;
    out.on('drain', () => {
      this.#blocked = false;
      const w = this.#waiters;
      this.#waiters = [];
      for (const f of w) f();
    });
    out.on('close', () => this.#close());
    out.on('error', () => this.#close());
    this.#queue(PREAMBLE);
  }

  /** Queues a frame; returns false when the stream is above its high-water mark (then await `ready()`). */
  send(type: FrameType, ...parts: Uint8Array[]): boolean {
    let len = 1;
    for (const p of parts) len += p.length;
    const head = new Uint8Array(5);
    writeU32(head, 0, len);
    head[4] = type;
    this.#queue(head);
    for (const p of parts) this.#queue(p);
    return !this.#blocked;
  }

  /** Resolves when the stream accepts more data (immediately unless blocked). */
  ready(): Promise<void> {
    if (!this.#blocked || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Writes queued frames now (used before ending the stream). */
  flush(): void {
    this.#scheduled = false;
    if (this.#pending.length === 0 || this.#closed) return;
    const data = this.#pending.length === 1 ? this.#pending[0]! : concat(...this.#pending);
    this.#pending = [];
    this.#pendingBytes = 0;
    this.bytesWritten += data.length;
    try {
      if (!this.#write(data)) this.#blocked = true;
    } catch {
      this.#close();
    }
  }

  /** Flushes and ends the stream. */
  end(): void {
    this.flush();
    if (!this.#closed) this.#out.end();
  }

  #queue(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.#pending.push(bytes);
    this.#pendingBytes += bytes.length;
    if (this.#pendingBytes >= 1 << 16) this.flush();
    else if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  #close(): void {
    this.#closed = true;
    this.#blocked = false;
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }
}

/** What a HELLO frame says about its sender. */
export interface Hello {
  readonly protocol: number;
  readonly format: number;
  readonly info: Readonly<Record<string, unknown>>;
}

/** Body of a HELLO frame. */
export function encodeHello(hello: Hello): Uint8Array {
  const json = utf8(JSON.stringify(hello.info));
  const out = new Uint8Array(4 + json.length);
  const view = new DataView(out.buffer);
  view.setUint16(0, hello.protocol);
  view.setUint16(2, hello.format);
  out.set(json, 4);
  return out;
}

/** Parses a HELLO body. @throws WorkerError ERR_MP_PROTOCOL_GARBAGE */
export function decodeHello(body: Uint8Array): Hello {
  if (body.length < 4) throw new WorkerError('ERR_MP_PROTOCOL_GARBAGE', `HELLO frame too short (${body.length} bytes)`);
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let info: unknown;
  try {
    info = JSON.parse(text(body.subarray(4)));
  } catch {
    info = {};
  }
  return {
    protocol: view.getUint16(0),
    format: view.getUint16(2),
    info: typeof info === 'object' && info !== null ? (info as Record<string, unknown>) : {},
  };
}

/**
 * Checks a peer's HELLO against ours. @throws WorkerError ERR_MP_PROTOCOL_MISMATCH naming both versions
 */
export function checkHello(ours: Hello, theirs: Hello, peer: string): void {
  if (ours.protocol === theirs.protocol && ours.format === theirs.format) return;
  const ver = theirs.info['version'] ? ` (modulepickle ${String(theirs.info['version'])})` : '';
  throw new WorkerError(
    'ERR_MP_PROTOCOL_MISMATCH',
    `${peer}${ver} speaks protocol ${theirs.protocol} / payload format ${theirs.format}, this side speaks protocol ${ours.protocol} / format ${ours.format}: install the same modulepickle version on both sides`,
    peer,
  );
}

/** Body of a frame made of a u32 id followed by bytes (TASK, CANCEL, BLOB_REQUEST, ...). */
export function idBody(id: number, extra?: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + (extra?.length ?? 0));
  writeU32(out, 0, id);
  if (extra) out.set(extra, 4);
  return out;
}

/** Header of a RESULT frame: id, status, worker memory (MiB) and code versions loaded so far. Payload follows. */
export function resultHead(id: number, status: ResultStatus, rssMiB: number, versions: number): Uint8Array {
  const out = new Uint8Array(13);
  writeU32(out, 0, id);
  out[4] = status;
  writeU32(out, 5, Math.min(rssMiB, 0xffffffff));
  writeU32(out, 9, Math.min(versions, 0xffffffff));
  return out;
}

/** Parsed RESULT frame. */
export interface ResultFrame {
  readonly id: number;
  readonly status: number;
  readonly rssMiB: number;
  readonly versions: number;
  readonly payload: Uint8Array;
}

/** Parses a RESULT body. @throws WorkerError ERR_MP_PROTOCOL_GARBAGE */
export function decodeResult(body: Uint8Array): ResultFrame {
  if (body.length < 13) throw new WorkerError('ERR_MP_PROTOCOL_GARBAGE', `RESULT frame too short (${body.length} bytes)`);
  return { id: readU32(body, 0), status: body[4]!, rssMiB: readU32(body, 5), versions: readU32(body, 9), payload: body.subarray(13) };
}

/** LOG frame body: stream (1 stdout, 2 stderr), task id (0 when none), UTF-8 text. */
export function logBody(stream: 1 | 2, taskId: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(5 + data.length);
  out[0] = stream;
  writeU32(out, 1, taskId);
  out.set(data, 5);
  return out;
}

/** BLOB_RESPONSE body: request id, then per requested hash `u8 found | u16 hashLen | hash | u32 len | bytes`. */
export function encodeBlobResponse(reqId: number, blobs: ReadonlyArray<readonly [string, Uint8Array | undefined]>): Uint8Array {
  const parts: Uint8Array[] = [idBody(reqId)];
  for (const [hash, bytes] of blobs) {
    const h = utf8(hash);
    const head = new Uint8Array(1 + 2 + h.length + 4);
    head[0] = bytes ? 1 : 0;
    new DataView(head.buffer).setUint16(1, h.length);
    head.set(h, 3);
    writeU32(head, 3 + h.length, bytes?.length ?? 0);
    parts.push(head);
    if (bytes) parts.push(bytes);
  }
  return concat(...parts);
}

/** Parses a BLOB_RESPONSE body into (hash, bytes or undefined when the client lacks it). @throws ERR_MP_PROTOCOL_GARBAGE */
export function decodeBlobResponse(body: Uint8Array): { reqId: number; blobs: Map<string, Uint8Array | undefined> } {
  const blobs = new Map<string, Uint8Array | undefined>();
  const bad = (): never => {
    throw new WorkerError('ERR_MP_PROTOCOL_GARBAGE', 'truncated BLOB_RESPONSE frame');
  };
  if (body.length < 4) bad();
  const reqId = readU32(body, 0);
  let pos = 4;
  while (pos < body.length) {
    if (pos + 3 > body.length) bad();
    const found = body[pos] === 1;
    const hl = (body[pos + 1]! << 8) | body[pos + 2]!;
    pos += 3;
    if (pos + hl + 4 > body.length) bad();
    const hash = text(body.subarray(pos, pos + hl));
    pos += hl;
    const len = readU32(body, pos);
    pos += 4;
    if (pos + len > body.length) bad();
    blobs.set(hash, found ? body.slice(pos, pos + len) : undefined);
    pos += len;
  }
  return { reqId, blobs };
}

/** Reads a big-endian u32. */
export function readU32(buf: Uint8Array, pos: number): number {
  return ((buf[pos]! << 24) | (buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!) >>> 0;
}

/** Writes a big-endian u32. */
export function writeU32(buf: Uint8Array, pos: number, v: number): void {
  buf[pos] = v >>> 24;
  buf[pos + 1] = (v >>> 16) & 0xff;
  buf[pos + 2] = (v >>> 8) & 0xff;
  buf[pos + 3] = v & 0xff;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** UTF-8 bytes of a string. */
export const utf8 = (s: string): Uint8Array => encoder.encode(s);
/** String of UTF-8 bytes. */
export const text = (b: Uint8Array): string => decoder.decode(b);

/** Concatenates byte arrays. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let pos = 0;
  for (const p of parts) {
    out.set(p, pos);
    pos += p.length;
  }
  return out;
}

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = 0; i <= hay.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}
