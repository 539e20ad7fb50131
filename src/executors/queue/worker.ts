/**
 * The worker half of the queue transport: a BullMQ Worker that checks each job's signature, fetches its frame,
 * hands it to a runner (normally a local process pool, so user code never blocks lock renewal and a crashing task
 * does not kill this process), and signs the result. Jobs that fail the signature check run nothing. Signed cancel
 * requests (cancel.ts) abort a running job through BullMQ's `cancelJob`: the runner's signal fires (the local pool
 * kills the task's process), the job fails without retry (`ERR_MP_CANCELLED`) and is removed from Redis.
 */
import { hostname } from 'node:os';
import type { ConnectionOptions, Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { DecodeError, ModulePickleError, ShipError, WorkerError } from '../../errors.ts';
import { RedisBlobStore } from './blob-store.ts';
import type { FrameOutcome } from './client.ts';
import { ConnectionWatch, closeBullmq, connectRedis, describeConnection, redisOptions, type QueueConnection } from './connection.ts';
import { RecentCancels, cancelChannel, openCancel } from './cancel.ts';
import { failureReason, frameOf, inlineFrame, openEnvelope, sealFrame, sealInline, type EnvelopeBody } from './envelope.ts';
import { loadBullmq } from './peers.ts';
import { KEY_ENV, resolveKey } from './sign.ts';

/** What a runner gets besides the frame. */
export interface FrameRunContext {
  readonly jobId: string;
  /** 1 for the first attempt. */
  readonly attempt: number;
  /** The blob store, for code blobs the local cache lacks. */
  readonly store: RedisBlobStore;
  /** The body of the job envelope (manifest and blob references). */
  readonly body: EnvelopeBody;
  /** Aborted when the job's client cancels it (timeout, abort): stop the task. */
  readonly signal: AbortSignal;
}

/**
 * Runs one task frame. Throw a `DecodeError` (or `ShipError` `ERR_MP_BLOB_MISSING`) for a payload that can never run:
 * the job then fails without retry. Other errors (e.g. a crashed pool process) fail the attempt, and BullMQ retries it.
 */
export type FrameRunner = (frame: Uint8Array, ctx: FrameRunContext) => Promise<FrameOutcome>;

/** One line of the worker's log. */
export interface QueueWorkerLogEntry {
  readonly level: 'info' | 'warn' | 'error';
  readonly message: string;
  readonly code?: string;
  readonly jobId?: string;
}

/** Options of {@link createQueueWorker}. */
export interface QueueWorkerOptions {
  readonly connection: QueueConnection;
  readonly queue: string;
  readonly runner: FrameRunner;
  /** Shared HMAC key (default: `MODULEPICKLE_KEY`). Required unless `insecure`. */
  readonly key?: string | Uint8Array;
  /** Run unsigned jobs. Anyone who can write to the queue can then run code here. */
  readonly insecure?: boolean;
  /** Jobs run at the same time (default 1). */
  readonly concurrency?: number;
  /** BullMQ lock duration in ms (default 30 s): a job whose worker stops renewing is stalled after this. */
  readonly lockDuration?: number;
  /** How often stalled jobs are looked for, in ms (default 30 s). */
  readonly stalledInterval?: number;
  /** How many times a job may stall before it fails (default 1). */
  readonly maxStalledCount?: number;
  readonly blobPrefix?: string;
  readonly blobTtlMs?: number;
  readonly inlineLimit?: number;
  /** How long to wait for Redis at start (default 10 s). */
  readonly connectTimeoutMs?: number;
  /** Name shown in logs and errors (default `host:pid`). */
  readonly name?: string;
  readonly log?: (entry: QueueWorkerLogEntry) => void;
}

/** A running queue worker. */
export interface QueueWorker {
  readonly name: string;
  /** Jobs completed, failed, refused and cancelled so far. */
  readonly stats: { completed: number; failed: number; refused: number; cancelled: number };
  /** Stops taking jobs, waits for running ones (unless `force`), and disconnects. */
  close(options?: { force?: boolean }): Promise<void>;
}

/** Codes that mean the payload can never run: fail without retry. */
const UNRECOVERABLE = new Set(['ERR_MP_UNSIGNED_JOB', 'ERR_MP_BAD_SIGNATURE', 'ERR_MP_BAD_JOB', 'ERR_MP_QUEUE_VERSION', 'ERR_MP_BLOB_MISSING', 'ERR_MP_BLOB_CORRUPT', 'ERR_MP_BAD_BLOB_ID']);

function isUnrecoverable(err: unknown): boolean {
  if (err instanceof DecodeError) return true;
  return err instanceof ModulePickleError && UNRECOVERABLE.has(err.code);
}

function defaultLog(e: QueueWorkerLogEntry): void {
  process.stderr.write(`[modulepickle worker] ${e.level}${e.code ? ` ${e.code}` : ''}${e.jobId ? ` job ${e.jobId}` : ''}: ${e.message}\n`);
}

/**
 * Starts a queue worker.
 * @throws ERR_MP_NO_KEY without key and without `insecure`; ERR_MP_REDIS_UNREACHABLE when Redis does not answer
 */
export async function createQueueWorker(o: QueueWorkerOptions): Promise<QueueWorker> {
  const key = resolveKey(o.key);
  const name = o.name ?? `${hostname()}:${process.pid}`;
  const log = o.log ?? defaultLog;
  if (!key && !o.insecure) {
    throw new WorkerError(
      'ERR_MP_NO_KEY',
      `refusing to start without a signing key: anyone who can write to queue '${o.queue}' could run code here. ` +
        `Set ${KEY_ENV} (the same on clients), or pass --insecure on a private Redis`,
      name,
    );
  }
  if (!key) log({ level: 'warn', message: `running WITHOUT job signatures (--insecure): anyone who can write to queue '${o.queue}' runs code here` });
  const { UnrecoverableError, Worker } = await loadBullmq();
  const options = redisOptions(o.connection);
  const redis: Redis = await connectRedis(options, o.connectTimeoutMs ?? 10_000, `modulepickle-worker:${o.queue}`);
  const store = new RedisBlobStore(redis, { prefix: o.blobPrefix, ttlMs: o.blobTtlMs });
  new ConnectionWatch(redis, (up, err) => {
    if (up) log({ level: 'info', message: `reconnected to Redis at ${describeConnection(options)}` });
    else log({ level: 'warn', message: `lost Redis at ${describeConnection(options)}${err ? ` (${err.message})` : ''}; reconnecting` });
  });
  const stats = { completed: 0, failed: 0, refused: 0, cancelled: 0 };
  const recent = new RecentCancels();
  // Jobs this worker failed because they were cancelled: removed from Redis once BullMQ has moved them to failed.
  const cancelledJobs = new Set<string>();
  const refs = (b: EnvelopeBody): [readonly string[], readonly string[]] => [b.b ?? [], b.m ?? []];
  // One timer refreshes the TTL of what running jobs use (not one timer and one round trip per job).
  const running = new Set<{ blobIds: readonly string[]; manifestIds: readonly string[] }>();
  const refresher = setInterval(() => {
    if (running.size === 0) return;
    const blobs = new Set<string>();
    const manifests = new Set<string>();
    for (const r of running) {
      r.blobIds.forEach((b) => blobs.add(b));
      r.manifestIds.forEach((m) => manifests.add(m));
    }
    void store.touch([...blobs], [...manifests]).catch(() => {});
  }, Math.max(100, Math.min(store.ttlMs / 3, 60_000)));
  refresher.unref();

  const cancelled = (jobId: string, reason: string): InstanceType<typeof UnrecoverableError> => {
    stats.cancelled++;
    cancelledJobs.add(jobId);
    log({ level: 'info', code: 'ERR_MP_CANCELLED', jobId, message: `cancelled by its client (${reason}), failing without retry` });
    return new UnrecoverableError(`ERR_MP_CANCELLED: job ${jobId} was cancelled by its client (${reason}) (worker ${name})`);
  };

  // Three parameters: BullMQ then passes the signal that `worker.cancelJob` aborts.
  const processor = async (job: Job, _token: string | undefined, signal: AbortSignal | undefined): Promise<unknown> => {
    const jobId = job.id ?? '?';
    const early = recent.reason(jobId);
    if (early !== undefined) throw cancelled(jobId, early);
    let body: EnvelopeBody;
    try {
      body = openEnvelope('job', job.data, { key, queue: o.queue, jobId, worker: name });
    } catch (err) {
      stats.refused++;
      const e = err as ModulePickleError;
      log({ level: 'error', code: e.code, jobId, message: `refused, nothing was run: ${e.message}` });
      throw new UnrecoverableError(`${e.code}: ${e.message}`);
    }
    const abort = signal ?? new AbortController().signal;
    // Keep the blobs this job uses alive while it runs (the client refreshed them while it was queued).
    const [blobIds, manifestIds] = refs(body);
    const active = blobIds.length + manifestIds.length > 0 ? { blobIds, manifestIds } : undefined;
    if (active) running.add(active);
    try {
      const frame = inlineFrame(body) ?? (await frameOf(body, store));
      const outcome = await untilAborted(o.runner(frame, { jobId, attempt: job.attemptsMade + 1, store, body, signal: abort }), abort);
      const sealCtx = { key, queue: o.queue, jobId, store, inlineLimit: o.inlineLimit };
      const kind = outcome.ok ? 'result' : 'error';
      const env = sealInline(kind, outcome.frame, sealCtx) ?? (await sealFrame(kind, outcome.frame, sealCtx));
      if (outcome.ok) {
        stats.completed++;
        return env;
      }
      stats.failed++;
      if (outcome.unrecoverable) {
        log({ level: 'error', jobId, message: `cannot run this payload, failing without retry: ${outcome.unrecoverable}` });
        throw new UnrecoverableError(failureReason(env));
      }
      throw new UserFailure(failureReason(env));
    } catch (err) {
      if (abort.aborted) throw cancelled(jobId, String(abort.reason ?? 'cancelled'));
      if (err instanceof UserFailure || err instanceof UnrecoverableError) throw err;
      stats.failed++;
      const e = err as ModulePickleError;
      const code = typeof e.code === 'string' && e.code.startsWith('ERR_MP_') ? e.code : 'ERR_MP_WORKER';
      if (isUnrecoverable(err)) {
        log({ level: 'error', code, jobId, message: `cannot run this payload, failing without retry: ${e.message}` });
        throw new UnrecoverableError(`${code}: ${e.message} (worker ${name})`);
      }
      log({ level: 'warn', code, jobId, message: e.message });
      throw new Error(`${code}: ${e.message} (worker ${name})`);
    } finally {
      if (active) running.delete(active);
    }
  };

  // Cancel requests, listened to before the first job is taken: a dedicated subscriber connection (a subscribed
  // connection can run nothing else).
  let bullWorker: { cancelJob(id: string, reason?: string): boolean } | undefined;
  const subscriber = redis.duplicate({ connectionName: `modulepickle-worker-cancel:${o.queue}` });
  subscriber.on('error', () => {});
  subscriber.on('message', (_channel: string, message: string) => {
    let req;
    try {
      req = openCancel(key, o.queue, message, name);
    } catch (err) {
      const e = err as ModulePickleError;
      return log({ level: 'warn', code: e.code, message: `ignored a cancel request: ${e.message}` });
    }
    recent.add(req);
    bullWorker?.cancelJob(req.jobId, req.reason);
  });
  try {
    await subscriber.subscribe(cancelChannel(`bull:${o.queue}`));
  } catch (err) {
    subscriber.disconnect();
    redis.disconnect();
    throw new WorkerError('ERR_MP_REDIS', `could not subscribe to the cancel channel of queue '${o.queue}': ${(err as Error).message}`, name, { cause: err });
  }
  const worker = new Worker(o.queue, processor, {
    connection: { ...options } as ConnectionOptions,
    concurrency: o.concurrency ?? 1,
    name,
    ...(o.lockDuration !== undefined ? { lockDuration: o.lockDuration } : {}),
    ...(o.stalledInterval !== undefined ? { stalledInterval: o.stalledInterval } : {}),
    ...(o.maxStalledCount !== undefined ? { maxStalledCount: o.maxStalledCount } : {}),
  });
  bullWorker = worker;
  worker.on('error', (err) => log({ level: 'warn', message: `BullMQ: ${err.message}` }));
  worker.on('failed', (job) => {
    const id = job?.id;
    if (id === undefined || !cancelledJobs.delete(id)) return;
    job!.remove().catch(() => {
      // Its client removes it too (on the failed event, or its next sweep).
    });
  });
  await worker.waitUntilReady();

  let closed: Promise<void> | undefined;
  return {
    name,
    stats,
    close(opts = {}) {
      closed ??= (async () => {
        clearInterval(refresher);
        await closeBullmq(worker, () => worker.close(opts.force ?? false), opts.force ? 3000 : 24 * 3600_000);
        subscriber.disconnect();
        redis.disconnect();
      })();
      return closed;
    },
  };
}

/** A user exception: its message is the signed error envelope BullMQ stores as the failure reason. */
class UserFailure extends Error {}

/** Settles as `p` does, or rejects as soon as `signal` aborts (a runner that ignores its signal cannot hold the job). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => (signal.removeEventListener('abort', onAbort), resolve(v)),
      (e: unknown) => (signal.removeEventListener('abort', onAbort), reject(e)),
    );
  });
}

/** Whether an error means "this payload can never run" (exported for runners that wrap their own errors). */
export function isUnrecoverablePayloadError(err: unknown): boolean {
  return isUnrecoverable(err) || (err instanceof ShipError && err.code === 'ERR_MP_BLOB_MISSING');
}
