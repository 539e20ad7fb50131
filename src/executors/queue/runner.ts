/**
 * Turns queue job frames into tasks for the local pool (or, opted in, runs them in the queue worker itself). A job frame is a task body without the function's bytes
 * (`kind | sha256 of the function payload | 0 | args payload`); the function payload is a blob in Redis named by
 * that hash, fetched once per worker host and kept in memory. Outcomes stay pickled; an error outcome that says the
 * payload itself cannot be decoded (wrong format version, a blob nobody can provide, a corrupt manifest) is marked
 * unrecoverable, so BullMQ fails the job without retrying it.
 */
import { ModulePickleError, ShipError } from '../../errors.ts';
import { loads, type BlobSource } from '../pickler.ts';
import { ResultStatus, readU32 } from '../protocol.ts';
import { FunctionCache, TaskKind, runTask, taskBody, type EncodedTask, type ErrorInfo, type TaskOutcome } from '../task.ts';
import type { FrameOutcome } from './client.ts';
import type { RedisBlobStore } from './blob-store.ts';
import type { LocalPool } from './local-pool.ts';
import type { FrameRunContext, FrameRunner } from './worker.ts';

/** Frame header size: kind, function hash, function length. */
const HEAD = 37;

/** Codes of errors raised while decoding a payload (not by user code) that no retry can fix. */
const PAYLOAD_CODES = new Set([
  'ERR_MP_PROTOCOL_GARBAGE',
  'ERR_MP_NOT_A_FUNCTION',
  'ERR_MP_BLOB_MISSING',
  'ERR_MP_BLOB_HASH_MISMATCH',
  'ERR_MP_BLOB_SIZE_MISMATCH',
  'ERR_MP_MANIFEST_INVALID',
  'ERR_MP_MANIFEST_TOO_LARGE',
  'ERR_MP_UNSAFE_PATH',
  'ERR_MP_SYMLINK_ESCAPE',
  'ERR_MP_NO_TREE',
]);

/** The parts of a job frame. @throws ModulePickleError ERR_MP_PROTOCOL_GARBAGE */
export function parseJobFrame(frame: Uint8Array): { kind: number; fnHash: Uint8Array; fnKey: string; argsBytes: Uint8Array } {
  if (frame.length < HEAD) throw new ModulePickleError('ERR_MP_PROTOCOL_GARBAGE', `job frame too short (${frame.length} bytes)`);
  const kind = frame[0]!;
  if (kind !== TaskKind.call && kind !== TaskKind.map && kind !== TaskKind.template) throw new ModulePickleError('ERR_MP_PROTOCOL_GARBAGE', `job frame has unknown task kind ${kind}`);
  if (readU32(frame, 33) !== 0) throw new ModulePickleError('ERR_MP_PROTOCOL_GARBAGE', 'job frame carries function bytes inline; expected a reference');
  const fnHash = frame.slice(1, 33);
  return { kind, fnHash, fnKey: Buffer.from(fnHash).toString('hex'), argsBytes: frame.subarray(HEAD) };
}

/**
 * Serves blobs from Redis to the local pool's processes (they verify each blob against its hash), and manifests by
 * version id (payloads may name their version by id alone; the receiver checks the text against the id).
 */
export function redisBlobSource(store: RedisBlobStore): BlobSource {
  const get = async (hashes: readonly string[]): Promise<Map<string, Uint8Array>> => {
    const out = new Map<string, Uint8Array>();
    const rest: string[] = [];
    for (const [h, b] of await store.getBlobs(hashes)) (b ? out.set(h, b) : rest.push(h));
    for (const h of rest) {
      const manifest = await store.getManifest(h);
      if (manifest) out.set(h, manifest);
    }
    return out;
  };
  return {
    async missing(hashes) {
      const absent = await store.missing(hashes);
      if (absent.length === 0) return absent;
      const noManifest = new Set(await store.missingKeys(absent.map((h) => store.manifestKey(h))));
      return absent.filter((h) => noManifest.has(store.manifestKey(h)));
    },
    get,
  };
}

/** Function payloads by hash, bounded by total bytes, least recently used evicted first. */
class FunctionBytes {
  readonly #map = new Map<string, Uint8Array>();
  #bytes = 0;
  constructor(readonly maxBytes: number) {}
  get(key: string): Uint8Array | undefined {
    const b = this.#map.get(key);
    if (b) {
      this.#map.delete(key);
      this.#map.set(key, b);
    }
    return b;
  }
  set(key: string, b: Uint8Array): void {
    if (this.#map.has(key)) return;
    this.#map.set(key, b);
    this.#bytes += b.byteLength;
    for (const [k, v] of this.#map) {
      if (this.#bytes <= this.maxBytes || this.#map.size <= 1) break;
      this.#map.delete(k);
      this.#bytes -= v.byteLength;
    }
  }
}

/** Why an error outcome can never succeed on retry, or undefined when it may be user code failing. */
export async function payloadProblem(payload: Uint8Array): Promise<string | undefined> {
  let info: ErrorInfo;
  try {
    info = (await loads(payload, { code: false })) as ErrorInfo;
  } catch {
    return undefined;
  }
  if (!info || typeof info !== 'object') return undefined;
  if (info.name === 'DecodeError' || (typeof info.code === 'string' && PAYLOAD_CODES.has(info.code))) return `${info.code ?? info.name}: ${info.message}`;
  return undefined;
}

/** Fetches function payloads from Redis by hash, once per worker (concurrent asks share one fetch), kept in memory. */
function functionPayloads(maxBytes: number): (fnKey: string, ctx: FrameRunContext) => Promise<Uint8Array> {
  const fns = new FunctionBytes(maxBytes);
  const inflight = new Map<string, Promise<Uint8Array>>();
  return async (fnKey, ctx) => {
    const have = fns.get(fnKey);
    if (have) return have;
    let p = inflight.get(fnKey);
    if (!p) {
      p = ctx.store.getBlob(fnKey, true).then((b) => {
        fns.set(fnKey, b);
        return b;
      });
      inflight.set(fnKey, p);
      void p.finally(() => inflight.delete(fnKey)).catch(() => {});
    }
    try {
      return await p;
    } catch (err) {
      if (err instanceof ShipError && err.code === 'ERR_MP_BLOB_MISSING') {
        throw new ShipError('ERR_MP_BLOB_MISSING', `the function payload of job ${ctx.jobId} (blob ${fnKey}) is not in Redis: it expired or Redis lost it; call again from the client`);
      }
      throw err;
    }
  };
}

async function toFrameOutcome(out: TaskOutcome): Promise<FrameOutcome> {
  if (out.status === ResultStatus.ok) return { ok: true, frame: out.payload };
  const unrecoverable = await payloadProblem(out.payload);
  return unrecoverable ? { ok: false, frame: out.payload, unrecoverable } : { ok: false, frame: out.payload };
}

/** A {@link FrameRunner} that runs job frames in a local pool. */
export function poolRunner(pool: LocalPool, options: { maxFunctionBytes?: number } = {}): FrameRunner {
  const fnBytesOf = functionPayloads(options.maxFunctionBytes ?? 64 * 1024 * 1024);
  return async (frame, ctx) => {
    const { kind, fnHash, fnKey, argsBytes } = parseJobFrame(frame);
    const fnBytes = await fnBytesOf(fnKey, ctx);
    const task: EncodedTask = { kind: kind as EncodedTask['kind'], fnKey, fnHash, fnBytes, argsBytes };
    return await toFrameOutcome(await pool.run(task, { signal: ctx.signal }));
  };
}

/**
 * A {@link FrameRunner} that runs job frames in this process, in the queue worker's own thread (`--inline`): no
 * hop to a local process, so a short task costs what its work costs. The price, which is why it is opt-in: a task
 * that blocks the thread also blocks BullMQ's lock renewal (its job is taken as stalled after the lock duration), a
 * task that crashes (`process.exit`, out of memory) takes the queue worker down, code versions cannot be recycled
 * (loaded modules stay in memory), and a cancelled task that is running cannot be stopped: its job is failed and
 * removed at once, and its result is dropped when it ends.
 */
export function inlineRunner(options: { cacheDir?: string; maxFunctionBytes?: number } = {}): FrameRunner {
  const fnBytesOf = functionPayloads(options.maxFunctionBytes ?? 64 * 1024 * 1024);
  const cache = new FunctionCache();
  let source: { store: RedisBlobStore; blobs: BlobSource } | undefined;
  return async (frame, ctx) => {
    if (source?.store !== ctx.store) source = { store: ctx.store, blobs: redisBlobSource(ctx.store) };
    const run = { blobSource: source.blobs, cache, cacheDir: options.cacheDir };
    parseJobFrame(frame); // checks the frame
    // A job frame carries the function's hash alone: a function already decoded here runs at once.
    let out = await runTask(frame, run);
    if (out.status === ResultStatus.needFunction) {
      const { kind, fnHash, fnKey, argsBytes } = parseJobFrame(frame);
      out = await runTask(taskBody({ kind: kind as EncodedTask['kind'], fnKey, fnHash, fnBytes: await fnBytesOf(fnKey, ctx), argsBytes }, true), run);
    }
    return await toFrameOutcome(out);
  };
}
