/**
 * Cancel requests from clients to queue workers. A waiting job is simply removed from Redis by its client; a
 * running one is locked by the worker that runs it, so the client publishes a signed request on the queue's cancel
 * channel (Redis pub/sub: no keys, nothing left behind) and that worker aborts the job through BullMQ's own
 * `worker.cancelJob`, stopping its task (its local process is killed and replaced). A request can reach a worker
 * before the job it names has started there (the client saw the job locked, the worker has not called its processor
 * yet), so workers remember recent requests and refuse such a job when it starts.
 */
import { DecodeError } from '../../errors.ts';
import { sign, verifyOrThrow, type SigningKey } from './sign.ts';

/** The pub/sub channel of a queue's cancel requests (`bull:<queue>:mp:cancel` for BullMQ's default prefix). */
export function cancelChannel(qualifiedName: string): string {
  return `${qualifiedName}:mp:cancel`;
}

/** What a cancel request says. */
export interface CancelRequest {
  readonly jobId: string;
  /** Why, for the worker's log and the job's failure reason: 'timeout', 'abort', 'close'. */
  readonly reason: string;
}

/** Encodes a signed cancel request. */
export function sealCancel(key: SigningKey, queue: string, req: CancelRequest): string {
  return JSON.stringify({ jobId: req.jobId, reason: req.reason, sig: sign(key, { kind: 'cancel', queue, jobId: req.jobId, body: req.reason }) });
}

/**
 * Decodes and verifies a cancel request.
 * @throws DecodeError ERR_MP_BAD_JOB (malformed); WorkerError ERR_MP_UNSIGNED_JOB / ERR_MP_BAD_SIGNATURE
 */
export function openCancel(key: SigningKey, queue: string, message: string, worker?: string): CancelRequest {
  let v: unknown;
  try {
    v = JSON.parse(message);
  } catch (err) {
    throw new DecodeError('ERR_MP_BAD_JOB', `a cancel request on queue '${queue}' is not JSON`, undefined, { cause: err });
  }
  const r = v as Record<string, unknown> | null;
  if (!r || typeof r.jobId !== 'string' || typeof r.reason !== 'string') {
    throw new DecodeError('ERR_MP_BAD_JOB', `a cancel request on queue '${queue}' has no job id or reason`);
  }
  verifyOrThrow(key, { kind: 'cancel', queue, jobId: r.jobId, body: r.reason }, r.sig, worker);
  return { jobId: r.jobId, reason: r.reason };
}

/** Cancel requests seen recently, bounded in number and age: a cancelled job that starts later is refused. */
export class RecentCancels {
  readonly #seen = new Map<string, { reason: string; at: number }>();
  constructor(
    readonly maxEntries = 10_000,
    readonly maxAgeMs = 3_600_000,
  ) {}

  add(req: CancelRequest, now = Date.now()): void {
    this.#seen.delete(req.jobId);
    this.#seen.set(req.jobId, { reason: req.reason, at: now });
    for (const [id, e] of this.#seen) {
      if (this.#seen.size <= this.maxEntries && now - e.at <= this.maxAgeMs) break;
      this.#seen.delete(id);
    }
  }

  /** The reason a job was cancelled, if it was (recently). */
  reason(jobId: string, now = Date.now()): string | undefined {
    const e = this.#seen.get(jobId);
    return e && now - e.at <= this.maxAgeMs ? e.reason : undefined;
  }
}
