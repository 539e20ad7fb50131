/**
 * The JSON shapes that travel in BullMQ job data, return values and failure reasons.
 * Job data holds only ids and small frames: a frame up to `inlineLimit` bytes travels as base64, a bigger one is a
 * content-addressed blob in Redis and the job holds its id. Every envelope is `{ mp, body, sig }`, where `body` is a
 * JSON string signed as-is (no canonicalization needed) together with the queue name and job id.
 */
import { DecodeError, WorkerError } from '../../errors.ts';
import type { RedisBlobStore } from './blob-store.ts';
import { sign, verifyOrThrow, type SigningKey } from './sign.ts';

/** Version of the queue envelope format. */
export const QUEUE_FORMAT = 1;

/** Prefix of a failure reason that carries a signed error envelope. */
export const FAILURE_PREFIX = 'modulepickle:';

/** Frames up to this many bytes travel inline in the job (base64); bigger ones go to the blob store. */
export const DEFAULT_INLINE_LIMIT = 16 * 1024;

/** What BullMQ stores as job data, return value, or (JSON after {@link FAILURE_PREFIX}) failure reason. */
export interface Envelope {
  readonly mp: number;
  readonly body: string;
  readonly sig: string;
}

/** The signed body of a job or result. */
export interface EnvelopeBody {
  /** Inline frame, base64. */
  readonly f?: string;
  /** Blob id of the frame when it is too big to be inline. */
  readonly r?: string;
  /** Manifest ids the frame references (their TTL is refreshed while the job runs). */
  readonly m?: readonly string[];
  /** Blob ids the frame references (likewise). */
  readonly b?: readonly string[];
}

/** Extra references a frame holds in the blob store. */
export interface FrameRefs {
  readonly manifests?: readonly string[];
  readonly blobs?: readonly string[];
}

type SealContext = { key: SigningKey; queue: string; jobId: string; store: RedisBlobStore; inlineLimit?: number; refs?: FrameRefs };

/** Builds a signed envelope around a frame, storing the frame as a blob when it is big. */
export async function sealFrame(kind: 'job' | 'result' | 'error', frame: Uint8Array, ctx: SealContext): Promise<Envelope> {
  return sealInline(kind, frame, ctx) ?? seal(kind, { r: await ctx.store.putValue(frame) }, ctx);
}

/** {@link sealFrame} without a round trip, for a frame small enough to travel inline; `undefined` when it is not. */
export function sealInline(kind: 'job' | 'result' | 'error', frame: Uint8Array, ctx: SealContext): Envelope | undefined {
  if (frame.byteLength > (ctx.inlineLimit ?? DEFAULT_INLINE_LIMIT)) return undefined;
  return seal(kind, { f: Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).toString('base64') }, ctx);
}

function seal(kind: 'job' | 'result' | 'error', b: { f?: string; r?: string; m?: readonly string[]; b?: readonly string[] }, ctx: SealContext): Envelope {
  if (ctx.refs?.manifests?.length) b.m = ctx.refs.manifests;
  if (ctx.refs?.blobs?.length) b.b = ctx.refs.blobs;
  const body = JSON.stringify(b);
  return { mp: QUEUE_FORMAT, body, sig: sign(ctx.key, { kind, queue: ctx.queue, jobId: ctx.jobId, body }) };
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'string');
}

/**
 * Checks an envelope's shape, version and signature and parses its body (the frame is not fetched yet).
 * @throws DecodeError ERR_MP_BAD_JOB (malformed), ERR_MP_QUEUE_VERSION (other format version);
 *   WorkerError ERR_MP_UNSIGNED_JOB / ERR_MP_BAD_SIGNATURE
 */
export function openEnvelope(
  kind: 'job' | 'result' | 'error',
  data: unknown,
  ctx: { key: SigningKey; queue: string; jobId: string; worker?: string },
): EnvelopeBody {
  const where = `${kind} ${ctx.jobId} on queue '${ctx.queue}'`;
  if (typeof data !== 'object' || data === null) throw new DecodeError('ERR_MP_BAD_JOB', `${where} is not a modulepickle envelope (got ${typeof data})`);
  const env = data as Record<string, unknown>;
  if (typeof env.mp !== 'number' || typeof env.body !== 'string') {
    throw new DecodeError('ERR_MP_BAD_JOB', `${where} is not a modulepickle envelope (no 'mp'/'body'); was it added by another producer?`);
  }
  if (env.mp !== QUEUE_FORMAT) {
    throw new DecodeError(
      'ERR_MP_QUEUE_VERSION',
      `${where} uses queue format ${env.mp} but this side speaks ${QUEUE_FORMAT}; run the same modulepickle version on clients and workers`,
    );
  }
  verifyOrThrow(ctx.key, { kind, queue: ctx.queue, jobId: ctx.jobId, body: env.body }, env.sig, ctx.worker);
  let body: unknown;
  try {
    body = JSON.parse(env.body);
  } catch (err) {
    throw new DecodeError('ERR_MP_BAD_JOB', `${where} has a body that is not JSON`, undefined, { cause: err });
  }
  if (typeof body !== 'object' || body === null) throw new DecodeError('ERR_MP_BAD_JOB', `${where} has a body that is not an object`);
  const b = body as Record<string, unknown>;
  const hasF = typeof b.f === 'string';
  const hasR = typeof b.r === 'string';
  if (hasF === hasR) throw new DecodeError('ERR_MP_BAD_JOB', `${where} must carry exactly one of an inline frame or a blob reference`);
  if (b.m !== undefined && !isStringArray(b.m)) throw new DecodeError('ERR_MP_BAD_JOB', `${where} has malformed manifest references`);
  if (b.b !== undefined && !isStringArray(b.b)) throw new DecodeError('ERR_MP_BAD_JOB', `${where} has malformed blob references`);
  return b as EnvelopeBody;
}

/** The frame an opened envelope holds, fetched from the blob store (and hash-checked) when it is a reference. */
export async function frameOf(body: EnvelopeBody, store: RedisBlobStore): Promise<Uint8Array> {
  return inlineFrame(body) ?? (await blobFrame(body, store));
}

/** The frame an opened envelope carries inline, or `undefined` when it is a reference. */
export function inlineFrame(body: EnvelopeBody): Uint8Array | undefined {
  return body.f === undefined ? undefined : Buffer.from(body.f, 'base64');
}

async function blobFrame(body: EnvelopeBody, store: RedisBlobStore): Promise<Uint8Array> {
  if (body.r === undefined) throw new DecodeError('ERR_MP_BAD_JOB', 'envelope has neither an inline frame nor a blob reference');
  return await store.getBlob(body.r, true);
}

/** Encodes an error envelope as a BullMQ failure reason. */
export function failureReason(env: Envelope): string {
  return FAILURE_PREFIX + JSON.stringify(env);
}

/** A failure reason split into a signed error envelope, or a plain `ERR_MP_...: message` / other text. */
export function parseFailure(reason: string): { envelope: Envelope } | { code: string; message: string } {
  if (reason.startsWith(FAILURE_PREFIX)) {
    try {
      return { envelope: JSON.parse(reason.slice(FAILURE_PREFIX.length)) as Envelope };
    } catch {
      return { code: 'ERR_MP_BAD_RESULT', message: `unparseable failure reason: ${reason.slice(0, 200)}` };
    }
  }
  const m = /^(ERR_MP_[A-Z0-9_]+): ([\s\S]*)$/.exec(reason);
  if (m) return { code: m[1]!, message: m[2]! };
  if (/stalled more than allowable limit/i.test(reason)) {
    return { code: 'ERR_MP_JOB_STALLED', message: `the job stalled too often (its workers died or were blocked): ${reason}` };
  }
  return { code: 'ERR_MP_JOB_FAILED', message: reason };
}

/** A WorkerError from a plain failure reason. */
export function failureError(code: string, message: string, jobId: string, queue: string): WorkerError {
  return new WorkerError(code, `job ${jobId} on queue '${queue}' failed: ${message}`);
}
