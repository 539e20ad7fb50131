/**
 * HMAC-SHA256 signatures over queue jobs and results. Whoever can write to the queue could otherwise run code on
 * every worker, so a worker runs only jobs signed with the shared key, and a client accepts only signed results.
 * The signed message binds the kind (job or result), the queue name and the job id to the body, so a job replayed
 * to another queue, or a result copied onto another job, is refused.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { WorkerError } from '../../errors.ts';

/** Environment variable holding the shared key when no `key` option is given. */
export const KEY_ENV = 'MODULEPICKLE_KEY';

/** A resolved signing key (raw bytes), or `undefined` for insecure mode. */
export type SigningKey = Buffer | undefined;

/** What a signature covers. */
export interface SignedFields {
  readonly kind: 'job' | 'result' | 'error' | 'cancel';
  readonly queue: string;
  readonly jobId: string;
  /** The body: the JSON envelope without its signature. */
  readonly body: string;
}

const MIN_KEY_BYTES = 16;

/**
 * Resolves the key from an option or `MODULEPICKLE_KEY`. Returns `undefined` when neither is set.
 * @throws ERR_MP_WEAK_KEY when the key is shorter than 16 bytes
 */
export function resolveKey(key?: string | Uint8Array, env: NodeJS.ProcessEnv = process.env): SigningKey {
  const raw = key ?? env[KEY_ENV];
  if (raw === undefined || raw === '') return undefined;
  const buf = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : Buffer.from(raw);
  if (buf.byteLength < MIN_KEY_BYTES) {
    throw new WorkerError('ERR_MP_WEAK_KEY', `the signing key is ${buf.byteLength} bytes; use at least ${MIN_KEY_BYTES} (e.g. \`openssl rand -hex 32\`)`);
  }
  return buf;
}

function message(f: SignedFields): Buffer {
  // Length-prefixed fields: no ambiguity between (queue "a:b", id "c") and (queue "a", id "b:c").
  const parts = ['modulepickle-queue-v1', f.kind, f.queue, f.jobId, f.body];
  return Buffer.from(parts.map((p) => `${Buffer.byteLength(p)}:${p}`).join(''), 'utf8');
}

/** Signs the fields: hex HMAC-SHA256, or `''` without a key. */
export function sign(key: SigningKey, fields: SignedFields): string {
  if (!key) return '';
  return createHmac('sha256', key).update(message(fields)).digest('hex');
}

/** Why a signature was refused. */
export type SignatureProblem = 'unsigned' | 'forged';

/** Checks a signature in constant time. Returns `undefined` when it is valid (or when there is no key: insecure mode). */
export function checkSignature(key: SigningKey, fields: SignedFields, signature: unknown): SignatureProblem | undefined {
  if (!key) return undefined;
  if (typeof signature !== 'string' || signature === '') return 'unsigned';
  const expected = Buffer.from(sign(key, fields), 'hex');
  const given = /^[0-9a-f]{64}$/.test(signature) ? Buffer.from(signature, 'hex') : Buffer.alloc(0);
  if (given.byteLength !== expected.byteLength || !timingSafeEqual(given, expected)) return 'forged';
  return undefined;
}

/**
 * Verifies a signature. @throws ERR_MP_UNSIGNED_JOB or ERR_MP_BAD_SIGNATURE (a WorkerError naming the queue and job)
 */
export function verifyOrThrow(key: SigningKey, fields: SignedFields, signature: unknown, worker?: string): void {
  const problem = checkSignature(key, fields, signature);
  if (!problem) return;
  const what = fields.kind === 'error' ? 'result' : fields.kind === 'cancel' ? 'cancel request for job' : fields.kind;
  if (problem === 'unsigned') {
    throw new WorkerError(
      'ERR_MP_UNSIGNED_JOB',
      `${what} ${fields.jobId} on queue '${fields.queue}' carries no signature; refused. Producers must use the same key (option \`key\` or ${KEY_ENV})`,
      worker,
    );
  }
  throw new WorkerError(
    'ERR_MP_BAD_SIGNATURE',
    `${what} ${fields.jobId} on queue '${fields.queue}' has a signature that does not match (forged, altered, replayed from another queue, or signed with another key); refused`,
    worker,
  );
}
