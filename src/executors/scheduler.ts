/**
 * The scheduler every executor shares (process pool, stdio, threads, the queue, and the queue worker's local pool):
 * a FIFO of pickled tasks, a set of lanes opened by a {@link Transport} (worker processes, threads, a Redis queue),
 * per-call timeouts and aborts, fault handling (a dead lane's running tasks fail, the ones it had not started go back
 * to the queue, the lane is replaced), recycling by code versions or memory, and graceful or forced close.
 *
 * It knows nothing of bytes on a wire or of pickling: tasks come in already pickled ({@link EncodedTask}) and
 * outcomes go out still pickled ({@link TaskOutcome}); a transport moves them.
 */
import { WorkerError } from '../errors.ts';
import { Deque } from './deque.ts';
import type { EncodedTask, TaskOutcome } from './task.ts';

/** Per-call options. */
export interface CallOptions {
  /** Milliseconds from submission; the call then rejects with `ERR_MP_TIMEOUT` and a running task is stopped. */
  readonly timeout?: number;
  /** Aborting rejects the call with `ERR_MP_ABORTED` and stops the task, queued or running. */
  readonly signal?: AbortSignal;
  /**
   * Thread pools: move these buffers (or the buffers of these views) to the thread instead of copying them, or
   * `true` for every ArrayBuffer of 64 KiB or more the arguments reach. They are detached here once sent.
   * Other executors copy. See also `transfer(value)`.
   */
  readonly transfer?: boolean | readonly (ArrayBufferLike | ArrayBufferView)[];
}

/** Abort reason of calls nobody waits for any more (a `map` stopped early): a running one may finish. */
export const abandoned: Error = new Error('map stopped early');

/** How a lane should stop a task it was sent: `kill` stops it even while it runs; `abandon` lets a running one finish. */
export type StopMode = 'kill' | 'abandon';

/** What a lane reports to the scheduler. */
export interface LaneEvents {
  /** A task finished; its outcome is still pickled. `health` feeds recycling. */
  result(lane: Lane, jobId: number, outcome: TaskOutcome, health?: LaneHealth): void;
  /** The lane gives a task back unrun (it lacked the function, or it dropped a cancelled queued task). */
  requeue(lane: Lane, jobId: number): void;
  /** One task failed in the transport (not in user code), e.g. its job vanished from Redis. */
  fail(lane: Lane, jobId: number, error: WorkerError): void;
  /** The lane is gone. `running` fail with `error` (when set); `waiting` never started and are requeued. */
  closed(lane: Lane, error: WorkerError | undefined, running: readonly number[], waiting: readonly number[]): void;
  /** The lane may accept tasks again (handshake done, pipe drained, an abandoned task finished). */
  wake(lane: Lane): void;
}

/** What a worker reports with a result, for recycling. */
export interface LaneHealth {
  /** Code versions (trees) the worker holds. */
  readonly versions: number;
  /** Resident memory in MiB. */
  readonly rssMiB: number;
}

/** One worker of a transport: a process, a thread, a queue connection. */
export interface Lane {
  readonly id: string;
  /** Process id, when the lane is a process. */
  readonly pid?: number | undefined;
  /** Resolves after the handshake; rejects if the lane never started. */
  readonly ready: Promise<unknown>;
  /** Handshake done. */
  readonly greeted: boolean;
  /** No new tasks (recycling, shutting down, killed). */
  readonly retiring: boolean;
  /** Asked to stop (shut down or killed): its end is not a crash. */
  readonly stopping: boolean;
  /** Tasks sent and not answered yet. */
  load(): number;
  /** Takes one more task now (greeted, not retiring, room in its window, not blocked). */
  accepting(): boolean;
  /** Whether this task may go to this lane now, beyond `accepting()` (default yes). */
  accepts?(task: EncodedTask): boolean;
  /** Sends a task. The lane decides whether the worker needs the function's bytes or only its hash. */
  send(jobId: number, task: EncodedTask): void;
  /**
   * The call of a sent task settled without its result: drop it if queued, else stop it as `mode` says. `reason` is
   * the call's error code (ERR_MP_TIMEOUT, ERR_MP_ABORTED), for the worker's log.
   */
  stop(jobId: number, mode: StopMode, reason?: string): void;
  /** No new tasks; stops gracefully once its tasks are done. */
  retire(): void;
  /** Graceful stop now (its queued tasks still run). */
  shutdown(): void;
  /** Immediate stop. */
  kill(): void;
  /** Keeps the event loop alive (`true`) or lets the process exit while the lane is idle (`false`). */
  setRef(ref: boolean): void;
}

/** Opens lanes. */
export interface Transport {
  /** Executor name in messages ('pool', 'stdio', 'threads', queue name). */
  readonly name: string;
  /** Number of lanes to keep open. */
  readonly size: number;
  /** Tasks in flight per lane (the default `map` window is `size × window`). */
  readonly window: number;
  /** Opens one lane; `id` names it in logs and errors. */
  open(id: string, events: LaneEvents): Lane;
  /** Lane ids are `${prefix}${n}`. */
  readonly prefix: string;
  /** Lanes share this process's memory (threads): buffers can travel beside payloads, shared or moved. */
  readonly sharesMemory?: boolean;
}

/** Options of a {@link Scheduler}. */
export interface SchedulerOptions {
  /** Default per-call timeout in ms. */
  readonly timeout?: number;
  /** Recycle a lane once its worker holds this many code versions (default 64). */
  readonly maxCodeVersions?: number;
  /** Recycle a lane once its worker's resident memory exceeds this many MiB (default: no bound). */
  readonly maxMemoryMiB?: number;
  /** Lanes that failed their handshake this many times in a row break the executor (default 3). */
  readonly maxStartFailures?: number;
  /** Counters to add to (default: a record of its own). */
  readonly stats?: SchedulerStats;
}

/** Scheduler counters. */
export interface SchedulerStats {
  tasks: number;
  workersStarted: number;
  workersCrashed: number;
  workersRecycled: number;
}

/** A finished task: its pickled outcome and the lane that ran it. */
export interface Finished extends TaskOutcome {
  readonly worker: string;
}

interface Job {
  readonly id: number;
  readonly task: EncodedTask;
  readonly resolve: (v: Finished) => void;
  readonly reject: (e: unknown) => void;
  settled: boolean;
  lane: Lane | undefined;
  cleanup: (() => void) | undefined;
}

/** Codes of a lane's start failure that no retry can fix. */
const FATAL_START = new Set(['ERR_MP_PROTOCOL_MISMATCH', 'ERR_MP_WORKER_START', 'ERR_MP_NO_KEY']);

/** Schedules pickled tasks onto the lanes of one transport. */
export class Scheduler {
  readonly stats: SchedulerStats;
  readonly #transport: Transport;
  readonly #options: SchedulerOptions;
  readonly #jobs = new Map<number, Job>();
  readonly #queue = new Deque<Job>();
  readonly #lanes = new Set<Lane>();
  readonly #events: LaneEvents;
  #nextJob = 1;
  #nextLane = 1;
  #startFailures = 0;
  #broken: WorkerError | undefined;
  #closing = false;
  #referenced = false;
  #unrefScheduled = false;
  /** Calls admitted before close() that are still being pickled, and pending ready() calls. */
  #admitted = 0;
  #holds = 0;
  #idleWaiters: (() => void)[] = [];
  #closedWaiters: (() => void)[] = [];

  constructor(transport: Transport, options: SchedulerOptions = {}) {
    this.#transport = transport;
    this.#options = options;
    this.stats = options.stats ?? { tasks: 0, workersStarted: 0, workersCrashed: 0, workersRecycled: 0 };
    this.#events = {
      result: (lane, id, outcome, health) => this.#onResult(lane, id, outcome, health),
      requeue: (_lane, id) => this.#requeue(id),
      fail: (_lane, id, error) => this.#fail(id, error),
      closed: (lane, error, running, waiting) => this.#onClosed(lane, error, running, waiting),
      wake: () => this.#dispatch(),
    };
    this.#fill();
  }

  /** Tasks in flight at once over all lanes (the default `map` window). */
  get capacity(): number {
    return this.#transport.size * this.#transport.window;
  }

  /** Live lanes. */
  lanes(): Lane[] {
    return [...this.#lanes];
  }

  /** The error that broke the executor (lanes cannot start), if any. */
  get broken(): WorkerError | undefined {
    return this.#broken;
  }

  /** Submits a pickled task. Rejects with `WorkerError` (timeout, abort, worker death, closed). */
  submit(task: EncodedTask, opts: CallOptions = {}): Promise<Finished> {
    return this.#submit(task, opts, false);
  }

  /**
   * Pickles a call with `encode`, then submits it. The call counts as admitted from now on: `close()` waits for it
   * even while it is still being pickled. @throws WorkerError ERR_MP_CLOSED after close(), the broken error
   */
  async encodeAndSubmit(encode: () => Promise<EncodedTask>, opts?: CallOptions): Promise<Finished> {
    if (this.#broken) throw this.#broken;
    if (this.#closing) throw this.#closedError();
    this.#admitted++;
    let task: EncodedTask;
    try {
      task = await encode();
    } finally {
      this.#admitted--;
    }
    const done = this.#submit(task, opts, true);
    this.#checkIdle();
    return await done;
  }

  #submit(task: EncodedTask, opts: CallOptions = {}, admitted: boolean): Promise<Finished> {
    if (this.#broken) return Promise.reject(this.#broken);
    if (this.#closing && !admitted) return Promise.reject(this.#closedError());
    return new Promise<Finished>((resolve, reject) => {
      const job: Job = { id: this.#nextJob++, task, resolve, reject, settled: false, lane: undefined, cleanup: undefined };
      const timeout = opts.timeout ?? this.#options.timeout;
      let timer: NodeJS.Timeout | undefined;
      if (timeout !== undefined && timeout !== Infinity) {
        timer = setTimeout(() => {
          const where = job.lane ? ` on worker ${job.lane.id}` : ' (still queued)';
          this.#stop(job, new WorkerError('ERR_MP_TIMEOUT', `call timed out after ${timeout} ms${where}`, job.lane?.id), 'kill');
        }, timeout);
      }
      const signal = opts.signal;
      const onAbort = (): void => {
        const where = job.lane ? ` on worker ${job.lane.id}` : '';
        this.#stop(job, new WorkerError('ERR_MP_ABORTED', `call aborted${where}`, job.lane?.id, { cause: signal?.reason }), signal?.reason === abandoned ? 'abandon' : 'kill');
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      job.cleanup = () => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      this.#jobs.set(job.id, job);
      this.stats.tasks++;
      this.#setRef();
      this.#queue.push(job);
      this.#fill();
      this.#dispatch();
    });
  }

  /** Resolves once every lane has completed its handshake. */
  async ready(): Promise<void> {
    if (this.#broken) throw this.#broken;
    this.#fill();
    this.#holds++;
    this.#setRef();
    try {
      await Promise.all([...this.#lanes].map((l) => l.ready));
    } finally {
      this.#holds--;
      this.#setRef();
    }
  }

  /** Graceful: waits for every admitted and submitted call, then stops the lanes. `force` rejects them and kills. */
  async close(opts: { force?: boolean } = {}): Promise<void> {
    this.#closing = true;
    // Keep the event loop alive until the lanes are gone (idle lanes are unreferenced).
    this.#referenced = true;
    for (const l of this.#lanes) l.setRef(true);
    if (opts.force) {
      const err = new WorkerError('ERR_MP_CLOSED', `the ${this.#transport.name} executor was closed with force while this call was pending`);
      for (const j of [...this.#jobs.values()]) this.#settle(j) && j.reject(err);
      this.#queue.clear();
      for (const l of this.#lanes) l.kill();
    } else {
      if (this.#jobs.size > 0 || this.#admitted > 0) await new Promise<void>((r) => this.#idleWaiters.push(r));
      // A lane still busy here runs only abandoned tasks (their calls already settled): stop it now.
      for (const l of this.#lanes) l.load() > 0 ? l.kill() : l.shutdown();
    }
    if (this.#lanes.size > 0) await new Promise<void>((r) => this.#closedWaiters.push(r));
  }

  #closedError(): WorkerError {
    return new WorkerError('ERR_MP_CLOSED', `the ${this.#transport.name} executor is closed: create a new one`);
  }

  #activeCount(): number {
    let n = 0;
    for (const l of this.#lanes) if (!l.retiring) n++;
    return n;
  }

  #fill(): void {
    if (this.#closing || this.#broken) return;
    while (this.#activeCount() < this.#transport.size) {
      const lane = this.#transport.open(`${this.#transport.prefix}${this.#nextLane++}`, this.#events);
      this.stats.workersStarted++;
      this.#lanes.add(lane);
      lane.setRef(this.#referenced);
      lane.ready.then(
        () => {
          this.#startFailures = 0;
          this.#dispatch();
        },
        () => {},
      );
    }
  }

  // Idle lanes are unreferenced so that a forgotten executor does not keep the process alive. Unreferencing waits
  // a macrotask, so back-to-back calls do not toggle native handles every time.
  #setRef(): void {
    const want = this.#jobs.size > 0 || this.#closing || this.#holds > 0;
    if (want === this.#referenced) return;
    if (want) {
      this.#referenced = true;
      for (const l of this.#lanes) l.setRef(true);
    } else if (!this.#unrefScheduled) {
      this.#unrefScheduled = true;
      setImmediate(() => {
        this.#unrefScheduled = false;
        if (this.#jobs.size > 0 || this.#closing || this.#holds > 0 || !this.#referenced) return;
        this.#referenced = false;
        for (const l of this.#lanes) l.setRef(false);
      }).unref();
    }
  }

  #settle(job: Job): boolean {
    if (job.settled) return false;
    job.settled = true;
    job.cleanup?.();
    this.#jobs.delete(job.id);
    this.#checkIdle();
    this.#setRef();
    return true;
  }

  #checkIdle(): void {
    if (this.#jobs.size > 0 || this.#admitted > 0) return;
    const w = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const f of w) f();
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      const job = this.#queue.shift()!;
      if (job.settled) continue;
      let best: Lane | undefined;
      let bestLoad = Infinity;
      for (const l of this.#lanes) {
        if (!l.accepting() || l.accepts?.(job.task) === false) continue;
        const load = l.load();
        if (load < bestLoad) (best = l), (bestLoad = load);
      }
      if (!best) return this.#queue.unshift(job);
      job.lane = best;
      best.send(job.id, job.task);
    }
  }

  #stop(job: Job, err: WorkerError, mode: StopMode): void {
    if (!this.#settle(job)) return;
    job.reject(err);
    job.lane?.stop(job.id, mode, err.code);
  }

  #onResult(lane: Lane, id: number, outcome: TaskOutcome, health: LaneHealth | undefined): void {
    const job = this.#jobs.get(id);
    if (job && !job.settled) {
      this.#settle(job);
      job.resolve({ ...outcome, worker: lane.id });
    }
    if (health && !lane.retiring) {
      const maxVersions = this.#options.maxCodeVersions ?? 64;
      const maxMemory = this.#options.maxMemoryMiB ?? Infinity;
      if (health.versions >= maxVersions || health.rssMiB >= maxMemory) {
        lane.retire();
        this.stats.workersRecycled++;
        this.#fill();
      }
    }
    this.#dispatch();
  }

  #requeue(id: number): void {
    const job = this.#jobs.get(id);
    if (!job || job.settled) return;
    job.lane = undefined;
    this.#queue.unshift(job);
    this.#dispatch();
  }

  #fail(id: number, error: WorkerError): void {
    const job = this.#jobs.get(id);
    if (job && this.#settle(job)) job.reject(error);
    this.#dispatch();
  }

  #onClosed(lane: Lane, error: WorkerError | undefined, running: readonly number[], waiting: readonly number[]): void {
    this.#lanes.delete(lane);
    if (error && !lane.stopping) this.stats.workersCrashed++;
    const back: Job[] = [];
    for (const id of running) {
      const job = this.#jobs.get(id);
      if (!job || job.settled) continue;
      // A lane that died before its handshake ran nothing: its tasks go back to the queue.
      if (error && lane.greeted) this.#settle(job) && job.reject(error);
      else back.push(job);
    }
    for (const id of waiting) {
      const job = this.#jobs.get(id);
      if (job && !job.settled) back.push(job);
    }
    for (const j of back.reverse()) (j.lane = undefined), this.#queue.unshift(j);
    if (!lane.greeted && error) {
      this.#startFailures++;
      if (FATAL_START.has(error.code) || this.#startFailures >= (this.#options.maxStartFailures ?? 3)) {
        this.#broken = error;
        for (let j = this.#queue.shift(); j; j = this.#queue.shift()) this.#settle(j) && j.reject(error);
      }
    }
    if (!this.#closing) this.#fill();
    this.#dispatch();
    if (this.#lanes.size === 0) {
      const w = this.#closedWaiters;
      this.#closedWaiters = [];
      for (const f of w) f();
    }
  }
}
