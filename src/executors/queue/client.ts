/**
 * The client half of the queue transport: frames in, frames out. It signs and adds jobs with explicit ids (the jobs
 * of one tick in one `addBulk`), waits for their results through ONE `QueueEvents` listener (never
 * `waitUntilFinished` per job), cancels jobs (a waiting one is removed, a running one is stopped on its worker through
 * the cancel channel, cancel.ts, and removed once it stopped), keeps the blobs of in-flight jobs alive, and turns lost
 * connections and vanished jobs into typed errors instead of silent hangs.
 */
import { randomBytes } from 'node:crypto';
import { Socket } from 'node:net';
import type { ConnectionOptions, JobsOptions, Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { WorkerError, type ModulePickleError } from '../../errors.ts';
import { RedisBlobStore, type BlobLoader, type UploadStats } from './blob-store.ts';
import { ConnectionWatch, closeBullmq, connectRedis, describeConnection, redisOptions, unreachable, withTimeout, type QueueConnection } from './connection.ts';
import { cancelChannel, sealCancel } from './cancel.ts';
import { failureError, frameOf, inlineFrame, openEnvelope, parseFailure, sealFrame, sealInline, type Envelope, type FrameRefs } from './envelope.ts';
import { loadBullmq } from './peers.ts';
import { resolveKey, type SigningKey } from './sign.ts';

/** Options of the queue transport (and of `createQueueExecutor`). */
export interface QueueClientOptions {
  /** Redis URL or ioredis options. */
  readonly connection: QueueConnection;
  /** BullMQ queue name; workers started with the same `--queue` run the jobs. */
  readonly queue: string;
  /** Shared HMAC key (default: `MODULEPICKLE_KEY`). Required unless `insecure`. */
  readonly key?: string | Uint8Array;
  /** Allow running without a key (jobs and results unsigned). Only for trusted, private Redis. */
  readonly insecure?: boolean;
  /** BullMQ attempts per job (default 1: no retry). A worker that dies mid-job is covered by stalled-job recovery. */
  readonly attempts?: number;
  /** BullMQ backoff between attempts. */
  readonly backoff?: JobsOptions['backoff'];
  /** Other BullMQ job options (priority, removeOnComplete, ...). */
  readonly jobOptions?: JobsOptions;
  /** Key prefix of blobs in Redis (default `mp`). */
  readonly blobPrefix?: string;
  /** TTL of blobs in Redis in ms (default 24 h); refreshed while jobs that use them are in flight. */
  readonly blobTtlMs?: number;
  /** Frames larger than this travel as blobs instead of inline (default 16 KiB). */
  readonly inlineLimit?: number;
  /** How long to wait for Redis at start (default 10 s). */
  readonly connectTimeoutMs?: number;
  /** How long Redis may be unreachable mid-run before in-flight calls fail (default 30 s). */
  readonly reconnectTimeoutMs?: number;
  /** How often pending jobs are checked directly in Redis, in case an event was lost (default 5 s). */
  readonly sweepIntervalMs?: number;
  /**
   * How long the result listener (BullMQ QueueEvents) stays connected while nothing is in flight (default 1 s). It
   * is then closed, and opened again, from the last event it saw, by the next call: an executor that is never
   * closed lets the process exit about this long after its last call. See {@link QueueClient.setRef}.
   */
  readonly eventsIdleMs?: number;
}

/** A call's outcome as frames: a result frame, or an error frame (a pickled remote exception). */
export type FrameOutcome = { ok: true; frame: Uint8Array } | { ok: false; frame: Uint8Array; unrecoverable?: string };

/** A manifest and its blobs, uploaded (only what is missing) before the jobs that need it. */
export interface ShipUpload {
  readonly manifestId: string;
  readonly manifestBytes: Uint8Array;
  readonly blobIds: readonly string[];
  readonly load: BlobLoader;
}

/** One frame to run. */
export interface Submission {
  readonly frame: Uint8Array;
  readonly refs?: FrameRefs;
  /** More blob ids to keep alive while the job is in flight, not listed in the job (e.g. the files of its code versions). */
  readonly keep?: () => Iterable<string>;
}

/** A job handed to {@link QueueClient.enqueue}. */
export interface JobHandle {
  readonly jobId: string;
  /** Resolves once the job is in Redis; rejects when it could not be added (then `outcome` rejects too). */
  readonly added: Promise<void>;
  /** The job's outcome. Rejects with `WorkerError` (lost, stalled, refused, cancelled, Redis gone too long). */
  readonly outcome: Promise<FrameOutcome>;
}

/** What cancelling did: the job was removed from Redis, or it was running and its worker was asked to stop it. */
export type CancelResult = 'removed' | 'stopping' | 'finishing';

interface Pending {
  readonly jobId: string;
  readonly refs: FrameRefs | undefined;
  readonly keep: (() => Iterable<string>) | undefined;
  resolve(outcome: FrameOutcome): void;
  reject(err: Error): void;
  added: boolean;
  missingSweeps: number;
}

interface Unsent {
  readonly entry: Pending;
  readonly sub: Submission;
  readonly added: { resolve(): void; reject(err: Error): void };
}

/** A cancelled job that was running: removed once it stopped (its worker also removes it). */
interface Cancelled {
  readonly since: number;
  readonly reason: string;
  /** Whether its worker is asked to stop it (false: it may finish, its result is dropped). */
  readonly stop: boolean;
}

/** How long a cancelled job that keeps running is tracked for removal. */
const CANCELLED_TRACK_MS = 3_600_000;

const JOB_NAME = 'mp';

/** The client half of the queue transport. */
export class QueueClient {
  readonly queueName: string;
  readonly store: RedisBlobStore;
  readonly #key: SigningKey;
  readonly #queue: Queue;
  /** The result listener; undefined while idle (closed, see setRef). */
  #events: QueueEvents | undefined;
  readonly #openEvents: (lastEventId: string) => QueueEvents;
  /** The newest event-stream id a listener delivered: the next listener starts after it, so nothing is missed. */
  #lastEventId: string;
  readonly #eventsIdleMs: number;
  #eventsIdleTimer: NodeJS.Timeout | undefined;
  readonly #eventsClosing = new Set<Promise<void>>();
  readonly #redis: Redis;
  readonly #watch: ConnectionWatch;
  readonly #pending = new Map<string, Pending>();
  readonly #jobOptions: JobsOptions;
  readonly #inlineLimit: number | undefined;
  readonly #reconnectTimeoutMs: number;
  readonly #where: string;
  readonly #idPrefix = randomBytes(6).toString('hex');
  readonly #uploads = new Map<string, Promise<UploadStats>>();
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #adding = new Set<Promise<unknown>>();
  readonly #addedOf = new Map<string, Promise<void>>();
  readonly #cancelled = new Map<string, Cancelled>();
  readonly #cancelling = new Set<Promise<CancelResult>>();
  readonly #channel: string;
  #unsent: Unsent[] = [];
  #idleWaiters: (() => void)[] = [];
  #eventsClient: unknown;
  #ref = true;
  #flushScheduled = false;
  #seq = 0;
  #closed = false;
  #sweeping = false;
  /** Totals since creation, for tests and benchmarks. */
  readonly stats = { jobs: 0 };

  private constructor(
    o: QueueClientOptions,
    key: SigningKey,
    redis: Redis,
    queue: Queue,
    events: QueueEvents,
    lastEventId: string,
    openEvents: (lastEventId: string) => QueueEvents,
    where: string,
  ) {
    this.queueName = o.queue;
    this.#key = key;
    this.#redis = redis;
    this.#queue = queue;
    this.#openEvents = openEvents;
    this.#lastEventId = lastEventId;
    this.#eventsIdleMs = o.eventsIdleMs ?? 1000;
    this.#where = where;
    this.#inlineLimit = o.inlineLimit;
    this.#reconnectTimeoutMs = o.reconnectTimeoutMs ?? 30_000;
    this.store = new RedisBlobStore(redis, { prefix: o.blobPrefix, ttlMs: o.blobTtlMs });
    this.#jobOptions = {
      attempts: o.attempts ?? 1,
      ...(o.backoff !== undefined ? { backoff: o.backoff } : {}),
      // Keep finished jobs a little while, so a result whose event was missed can still be read from the job.
      removeOnComplete: { age: 3600, count: 10_000 },
      removeOnFail: { age: 24 * 3600, count: 10_000 },
      ...o.jobOptions,
    };
    this.#watch = new ConnectionWatch(redis);
    this.#channel = cancelChannel(queue.qualifiedName ?? `bull:${o.queue}`);
    queue.on('error', () => {});
    // A reconnect opens a new socket: give it the current ref state.
    redis.on('connect', () => this.#refSockets());
    this.#listen(events);
    const sweepMs = o.sweepIntervalMs ?? 5000;
    this.#timers.push(setInterval(() => void this.#sweep(), sweepMs).unref());
    const ttl = this.store.ttlMs;
    this.#timers.push(setInterval(() => void this.#touch(), Math.max(100, Math.min(ttl / 3, 60_000))).unref());
  }

  /**
   * Connects to Redis and starts listening for results.
   * @throws ERR_MP_NO_KEY without key and without `insecure`; ERR_MP_REDIS_UNREACHABLE when Redis does not answer
   */
  static async connect(o: QueueClientOptions): Promise<QueueClient> {
    const key = resolveKey(o.key);
    if (!key && !o.insecure) {
      throw new WorkerError(
        'ERR_MP_NO_KEY',
        `no signing key for queue '${o.queue}': pass \`key\` or set MODULEPICKLE_KEY (the same on workers), or pass \`insecure: true\` on a private Redis`,
      );
    }
    const { Queue, QueueEvents } = await loadBullmq();
    const options = redisOptions(o.connection);
    const timeout = o.connectTimeoutMs ?? 10_000;
    const redis = await connectRedis(options, timeout, `modulepickle-client:${o.queue}`);
    const queue = new Queue(o.queue, { connection: redis });
    // Listen from the stream's current end, not from '$' when the listener's first read happens to run: a job
    // added (and finished) in between would otherwise be seen only by the next sweep.
    let lastEventId = '0';
    try {
      const [last] = (await redis.xrevrange(queue.keys.events!, '+', '-', 'COUNT', 1)) as [string, string[]][];
      if (last) lastEventId = last[0];
    } catch (err) {
      redis.disconnect();
      throw new WorkerError('ERR_MP_REDIS', `could not read the event stream of queue '${o.queue}': ${(err as Error).message}`, undefined, { cause: err });
    }
    const openEvents = (after: string): QueueEvents => {
      const e = new QueueEvents(o.queue, { connection: { ...options } as ConnectionOptions, autorun: true, lastEventId: after });
      e.on('error', () => {
        // Connection errors are tracked by the watch on the shared client; QueueEvents reconnects by itself.
      });
      return e;
    };
    const events = openEvents(lastEventId);
    try {
      await withTimeout(events.waitUntilReady(), timeout, () => unreachable(describeConnection(options), timeout));
    } catch (err) {
      await Promise.allSettled([events.close(), queue.close()]);
      redis.disconnect();
      throw err;
    }
    return new QueueClient(o, key, redis, queue, events, lastEventId, openEvents, describeConnection(options));
  }

  /** Number of calls waiting for a result. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Uploads a manifest and its missing blobs once, even when many calls ask at the same time. */
  async upload(ship: ShipUpload): Promise<UploadStats> {
    let p = this.#uploads.get(ship.manifestId);
    if (!p) {
      p = this.store.ensureManifest(ship.manifestId, ship.manifestBytes, ship.blobIds, ship.load);
      this.#uploads.set(ship.manifestId, p);
      void p.finally(() => this.#uploads.delete(ship.manifestId)).catch(() => {});
    }
    return await p;
  }

  /** Runs one frame on some worker. */
  async submit(s: Submission): Promise<FrameOutcome> {
    const h = this.enqueue(s);
    await h.added;
    return await h.outcome;
  }

  /**
   * Adds many jobs in one round trip (`addBulk`). Resolves once they are added, to one promise per job.
   * @throws ERR_MP_CLOSED after close(); ERR_MP_REDIS_UNREACHABLE when Redis is down for too long; ERR_MP_REDIS
   */
  async submitMany(subs: readonly Submission[]): Promise<Promise<FrameOutcome>[]> {
    const handles = subs.map((s) => this.enqueue(s));
    await Promise.all(handles.map((h) => h.added));
    return handles.map((h) => h.outcome);
  }

  /**
   * Queues a job to be added with the others of this tick (one `addBulk`). Synchronous, so the job id is known (and
   * the job cancellable) at once.
   */
  enqueue(sub: Submission): JobHandle {
    const jobId = `${this.#idPrefix}-${++this.#seq}`;
    let entry!: Pending;
    const outcome = new Promise<FrameOutcome>((resolve, reject) => {
      entry = { jobId, refs: sub.refs, keep: sub.keep, resolve, reject, added: false, missingSweeps: 0 };
    });
    outcome.catch(() => {}); // the submitter observes it; a job cancelled meanwhile rejects unobserved
    let addedFns!: Unsent['added'];
    const added = new Promise<void>((resolve, reject) => (addedFns = { resolve, reject }));
    added.catch(() => {});
    if (this.#closed) {
      const e = new WorkerError('ERR_MP_CLOSED', `the queue executor for '${this.queueName}' is closed`);
      entry.reject(e);
      addedFns.reject(e);
      return { jobId, added, outcome };
    }
    this.#pending.set(jobId, entry);
    this.#wantEvents();
    this.#addedOf.set(jobId, added);
    void added.catch(() => {}).finally(() => this.#addedOf.delete(jobId));
    this.#unsent.push({ entry, sub, added: addedFns });
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      // After the microtasks queued so far: the calls submitted together share one round trip.
      queueMicrotask(() => {
        this.#flushScheduled = false;
        const batch = this.#unsent;
        this.#unsent = [];
        const adding = this.#add(batch);
        this.#adding.add(adding);
        void adding.finally(() => this.#adding.delete(adding));
      });
    }
    return { jobId, added, outcome };
  }

  async #add(batch: Unsent[]): Promise<void> {
    const live = batch.filter((u) => this.#pending.get(u.entry.jobId) === u.entry);
    for (const u of batch) if (!live.includes(u)) u.added.resolve(); // cancelled before it was sent: nothing to add
    if (live.length === 0) return;
    const fail = (err: unknown): void => {
      const e =
        err instanceof WorkerError && err.code !== 'ERR_MP_REDIS'
          ? err
          : new WorkerError('ERR_MP_REDIS', `could not add jobs to queue '${this.queueName}': ${(err as Error).message}`, undefined, { cause: err });
      for (const u of live) {
        this.#settle(u.entry.jobId, (p) => p.reject(e));
        u.added.reject(e);
      }
    };
    let jobs: { name: string; data: Envelope; opts: JobsOptions }[];
    try {
      this.#checkConnection();
      const seal = ({ entry, sub }: Unsent): { name: string; data: Envelope; opts: JobsOptions } | Promise<{ name: string; data: Envelope; opts: JobsOptions }> => {
        const ctx = { key: this.#key, queue: this.queueName, jobId: entry.jobId, store: this.store, inlineLimit: this.#inlineLimit, refs: sub.refs };
        const opts = { ...this.#jobOptions, jobId: entry.jobId };
        // Small frames (the usual case) are sealed without a round trip; big ones are stored as blobs first.
        const data = sealInline('job', sub.frame, ctx);
        return data ? { name: JOB_NAME, data, opts } : sealFrame('job', sub.frame, ctx).then((d) => ({ name: JOB_NAME, data: d, opts }));
      };
      const sealed = live.map(seal);
      jobs = sealed.some((j) => j instanceof Promise) ? await Promise.all(sealed) : (sealed as { name: string; data: Envelope; opts: JobsOptions }[]);
      if (jobs.length === 1) await this.#queue.add(jobs[0]!.name, jobs[0]!.data, jobs[0]!.opts);
      else await this.#queue.addBulk(jobs);
    } catch (err) {
      return fail(err);
    }
    this.stats.jobs += jobs.length;
    for (const u of live) {
      u.entry.added = true;
      u.added.resolve();
    }
  }

  /**
   * Cancels a job: its call's outcome rejects with ERR_MP_CANCELLED; a job still waiting is removed from Redis; a
   * running one is stopped on its worker (`stop`; otherwise it may finish) and removed once it ended. A job that
   * was never added (cancelled in the same tick) is not added.
   */
  cancel(jobId: string, reason: string, options: { stop?: boolean } = {}): Promise<CancelResult> {
    const work = this.#cancel(jobId, reason, options);
    this.#cancelling.add(work);
    void work.finally(() => this.#cancelling.delete(work)).catch(() => {});
    return work;
  }

  async #cancel(jobId: string, reason: string, options: { stop?: boolean }): Promise<CancelResult> {
    const p = this.#pending.get(jobId);
    if (p) {
      this.#pending.delete(jobId);
      this.#checkIdle();
      p.reject(new WorkerError('ERR_MP_CANCELLED', `job ${jobId} on queue '${this.queueName}' was cancelled (${reason})`));
    }
    const adding = this.#addedOf.get(jobId);
    if (adding) {
      try {
        await adding;
      } catch {
        return 'removed'; // it never reached Redis
      }
      if (p && !p.added) return 'removed'; // cancelled before its batch was sent: it was left out
    }
    this.#cancelled.set(jobId, { since: Date.now(), reason, stop: options.stop !== false });
    return await this.#removeCancelled(jobId, true);
  }

  /** Jobs cancelled while running that are not removed yet. */
  get cancellingCount(): number {
    return this.#cancelled.size;
  }

  /** Removes a cancelled job if it is not running any more; else (when `signal`) asks its worker again to stop it. */
  async #removeCancelled(jobId: string, signal: boolean): Promise<CancelResult> {
    const c = this.#cancelled.get(jobId);
    if (!c) return 'removed';
    let removed: number;
    try {
      removed = await this.#queue.remove(jobId);
    } catch {
      return c.stop ? 'stopping' : 'finishing'; // Redis trouble: the sweep tries again
    }
    // 0: locked, so a worker runs it (any other answer: it is gone now, or it was never a plain job).
    if (removed !== 0) {
      this.#cancelled.delete(jobId);
      return 'removed';
    }
    if (!c.stop) return 'finishing';
    if (signal) await this.#redis.publish(this.#channel, sealCancel(this.#key, this.queueName, { jobId, reason: c.reason })).catch(() => 0);
    return 'stopping';
  }

  #settle(jobId: string, f: (p: Pending) => void): void {
    const p = this.#pending.get(jobId);
    if (!p) return;
    this.#pending.delete(jobId);
    f(p);
    this.#checkIdle();
    // Unreferenced with calls still pending (a client used on its own): idle from now.
    if (!this.#ref && this.#pending.size === 0) this.#idleEvents();
  }

  #checkIdle(): void {
    if (this.#pending.size > 0 || this.#idleWaiters.length === 0) return;
    const w = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const f of w) f();
  }

  async #onCompleted(jobId: string, returnvalue: unknown): Promise<void> {
    if (this.#cancelled.has(jobId)) void this.#removeCancelled(jobId, false);
    const p = this.#pending.get(jobId);
    if (!p) return;
    try {
      const value = typeof returnvalue === 'string' ? (JSON.parse(returnvalue) as unknown) : returnvalue;
      const body = openEnvelope('result', value, { key: this.#key, queue: this.queueName, jobId });
      // An inline result settles within the event's own callback (no extra turn behind the listener's next read).
      const frame = inlineFrame(body) ?? (await frameOf(body, this.store));
      this.#settle(jobId, (q) => q.resolve({ ok: true, frame }));
    } catch (err) {
      this.#settle(jobId, (q) => q.reject(asResultError(err, jobId, this.queueName)));
    }
  }

  async #onFailed(jobId: string, failedReason: string): Promise<void> {
    if (this.#cancelled.has(jobId)) void this.#removeCancelled(jobId, false);
    const p = this.#pending.get(jobId);
    if (!p) return;
    try {
      const parsed = parseFailure(failedReason ?? '');
      if ('code' in parsed) throw failureError(parsed.code, parsed.message, jobId, this.queueName);
      const body = openEnvelope('error', parsed.envelope, { key: this.#key, queue: this.queueName, jobId });
      const frame = inlineFrame(body) ?? (await frameOf(body, this.store));
      this.#settle(jobId, (q) => q.resolve({ ok: false, frame }));
    } catch (err) {
      this.#settle(jobId, (q) => q.reject(asResultError(err, jobId, this.queueName)));
    }
  }

  #checkConnection(): void {
    const down = this.#watch.downFor();
    if (down > this.#reconnectTimeoutMs) {
      const last = this.#watch.lastError;
      throw new WorkerError(
        'ERR_MP_REDIS_UNREACHABLE',
        `Redis at ${this.#where} has been unreachable for ${down < 10_000 ? `${down} ms` : `${Math.round(down / 1000)} s`}${last ? ` (${last.message})` : ''}; ` +
          `calls on queue '${this.queueName}' fail until it is back`,
      );
    }
  }

  /** Fails in-flight calls when Redis is gone too long; finds results whose events were missed and jobs that vanished. */
  async #sweep(): Promise<void> {
    if (this.#cancelled.size > 0 && this.#watch.downFor() === 0) {
      const now = Date.now();
      for (const [id, c] of [...this.#cancelled]) {
        if (now - c.since > CANCELLED_TRACK_MS) this.#cancelled.delete(id);
        else await this.#removeCancelled(id, true);
      }
    }
    if (this.#pending.size === 0) return;
    try {
      this.#checkConnection();
    } catch (err) {
      for (const id of [...this.#pending.keys()]) this.#settle(id, (p) => p.reject(err as Error));
      return;
    }
    if (this.#sweeping || this.#watch.downFor() > 0) return;
    this.#sweeping = true;
    try {
      const ids = [...this.#pending.values()].filter((p) => p.added).map((p) => p.jobId).slice(0, 2000);
      const pipe = this.#redis.pipeline();
      const prefix = this.#queue.qualifiedName ?? `bull:${this.queueName}`;
      for (const id of ids) pipe.hmget(`${prefix}:${id}`, 'finishedOn', 'returnvalue', 'failedReason', 'timestamp');
      const res = (await pipe.exec()) ?? [];
      res.forEach(([err, row], i) => {
        const id = ids[i]!;
        const p = this.#pending.get(id);
        if (err || !p) return;
        const [finishedOn, returnvalue, failedReason, timestamp] = row as (string | null)[];
        if (timestamp === null) {
          // Twice absent: the job is gone (Redis restarted without persistence, or it was removed by someone).
          if (++p.missingSweeps >= 2) {
            this.#settle(id, (q) =>
              q.reject(
                new WorkerError(
                  'ERR_MP_JOB_LOST',
                  `job ${id} vanished from queue '${this.queueName}' before it finished (Redis restarted without persistence, or the job was removed); call again`,
                ),
              ),
            );
          }
          return;
        }
        p.missingSweeps = 0;
        if (!finishedOn) return;
        if (returnvalue !== null && (failedReason === null || failedReason === '')) void this.#onCompleted(id, returnvalue);
        else if (failedReason) void this.#onFailed(id, failedReason);
      });
    } catch {
      // A failed sweep is retried at the next tick; connection trouble is handled by the watch.
    } finally {
      this.#sweeping = false;
    }
  }

  /** Refreshes the TTL of blobs that in-flight jobs reference. */
  async #touch(): Promise<void> {
    if (this.#pending.size === 0 || this.#watch.downFor() > 0) return;
    const manifests = new Set<string>();
    const blobs = new Set<string>();
    for (const p of this.#pending.values()) {
      p.refs?.manifests?.forEach((m) => manifests.add(m));
      p.refs?.blobs?.forEach((b) => blobs.add(b));
      if (p.keep) for (const b of p.keep()) blobs.add(b);
    }
    await this.store.touch([...blobs], [...manifests]).catch(() => {});
  }

  /**
   * Waits for in-flight calls (all of them, unless `force`, which cancels their jobs and rejects them), then closes
   * the connections.
   */
  async close(options: { force?: boolean } = {}): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (options.force) await Promise.allSettled([...this.#pending.keys()].map((id) => this.cancel(id, 'close')));
    await Promise.allSettled([...this.#adding]);
    if (this.#pending.size > 0) await new Promise<void>((r) => this.#idleWaiters.push(r));
    await Promise.allSettled([...this.#cancelling]);
    // One last try at cancelled jobs that were still running; their workers remove the ones that are left.
    await Promise.allSettled([...this.#cancelled.keys()].map((id) => this.#removeCancelled(id, true)));
    for (const t of this.#timers) clearInterval(t);
    clearTimeout(this.#eventsIdleTimer);
    this.#stopEvents();
    await Promise.allSettled([...this.#eventsClosing, this.#queue.close()]);
    this.#redis.disconnect();
  }

  /**
   * Lets the process exit while nothing is in flight (`false`), or keeps it alive (`true`).
   *
   * Unreferencing the sockets is not enough: BullMQ's QueueEvents arms a referenced timer (its XREAD watchdog,
   * blockingTimeout + 1 s) for every blocking read, so a listener that runs keeps the process alive forever. So once
   * unreferenced for `eventsIdleMs` with nothing pending, the listener is closed; the next call opens a new one,
   * which reads on from the last event seen.
   */
  setRef(ref: boolean): void {
    this.#ref = ref;
    this.#refSockets();
    if (ref) this.#wantEvents();
    else this.#idleEvents();
  }

  #refSockets(): void {
    for (const s of this.#sockets()) (this.#ref ? s.ref() : s.unref());
  }

  /** Attaches the result handlers to a listener, and tracks its connection's socket for setRef. */
  #listen(events: QueueEvents): void {
    const seen = (id: string | undefined): void => {
      if (id !== undefined && streamIdAfter(id, this.#lastEventId)) this.#lastEventId = id;
    };
    events.on('completed', ({ jobId, returnvalue }, id) => {
      seen(id);
      void this.#onCompleted(jobId, returnvalue);
    });
    events.on('failed', ({ jobId, failedReason }, id) => {
      seen(id);
      void this.#onFailed(jobId, failedReason);
    });
    // Only to move the resume point on (fewer events read again by the next listener).
    for (const name of ['added', 'active', 'removed'] as const) events.on(name, (_args: unknown, id: string) => seen(id));
    const eventsClient = (events as { backend?: { connection?: { client?: Promise<{ on(e: string, f: () => void): void }> } } }).backend?.connection?.client;
    void eventsClient?.then(
      (c) => {
        if (this.#events !== events) return;
        this.#eventsClient = c;
        c.on('connect', () => this.#events === events && this.#refSockets());
        this.#refSockets();
      },
      () => {},
    );
    this.#events = events;
  }

  /** Opens the listener if it is closed, and keeps it open. */
  #wantEvents(): void {
    clearTimeout(this.#eventsIdleTimer);
    this.#eventsIdleTimer = undefined;
    if (!this.#events && !this.#closed) this.#listen(this.#openEvents(this.#lastEventId));
  }

  /** Closes the listener after `eventsIdleMs`, unless a call comes first. */
  #idleEvents(): void {
    if (!this.#events || this.#eventsIdleTimer || this.#closed) return;
    this.#eventsIdleTimer = setTimeout(() => {
      this.#eventsIdleTimer = undefined;
      if (!this.#ref && this.#pending.size === 0) this.#stopEvents();
    }, this.#eventsIdleMs).unref();
  }

  #stopEvents(): void {
    const events = this.#events;
    if (!events) return;
    this.#events = undefined;
    this.#eventsClient = undefined;
    const closing = closeBullmq(events).catch(() => {});
    this.#eventsClosing.add(closing);
    void closing.finally(() => this.#eventsClosing.delete(closing));
  }

  #sockets(): Socket[] {
    const out: Socket[] = [];
    const add = (c: unknown): void => {
      const stream = (c as { stream?: unknown } | undefined)?.stream;
      if (stream instanceof Socket) out.push(stream);
    };
    add(this.#redis);
    add(this.#eventsClient);
    return out;
  }
}

/** Whether event-stream id `a` (`<ms>-<seq>`) comes after `b`. */
function streamIdAfter(a: string, b: string): boolean {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am !== bm ? am > bm : as > bs;
}

function asResultError(err: unknown, jobId: string, queue: string): Error {
  if (err instanceof WorkerError) return err;
  const e = err as ModulePickleError;
  return new WorkerError(e.code ?? 'ERR_MP_BAD_RESULT', `result of job ${jobId} on queue '${queue}' could not be read: ${e.message}`, undefined, { cause: err });
}
