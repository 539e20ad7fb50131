/**
 * Scheduling shared by every process-based executor (`createPool`, `createStdioExecutor`): a queue of pickled
 * tasks, N worker connections with a small prefetch window each, fault handling (a dead worker's running task
 * rejects, its queued ones are requeued, the worker is replaced), timeouts, aborts, recycling and close.
 */
import { WorkerError } from '../errors.ts';
import { WorkerConnection, type LogHandler, type SpawnSpec } from './connection.ts';
import { ResultStatus, type ResultFrame } from './protocol.ts';
import type { BlobSource, PickleOptions } from './pickler.ts';
import { decodeOutcome, encodeFunction, encodeTask, taskBody, type EncodedTask } from './task.ts';
import { mapStopped, mapStream, type MapOptions, type MapResult } from './map.ts';
import { prefixLogs } from './logs.ts';
import { createShipping } from './shipping.ts';
import { Deque } from './deque.ts';
import type { ShipBuild } from './pickler.ts';

/** Per-call options. */
export interface CallOptions {
  /** Milliseconds from submission; the call then rejects with `ERR_MP_TIMEOUT` and a running task's worker is killed. */
  readonly timeout?: number;
  /** Aborting rejects the call with `ERR_MP_ABORTED` (a running task's worker is killed and replaced). */
  readonly signal?: AbortSignal;
}

/** Options shared by `createPool` and `createStdioExecutor`. */
export interface ExecutorOptions {
  /** Number of worker processes. */
  readonly workers?: number;
  /** Tasks sent ahead to each worker (they run one at a time); default 4. */
  readonly prefetch?: number;
  /** Default per-call timeout in milliseconds (none by default). */
  readonly timeout?: number;
  /** Recycle a worker once it has loaded this many code versions (default 64). */
  readonly maxCodeVersions?: number;
  /** Recycle a worker once its resident memory exceeds this many MiB (default: no bound). */
  readonly maxMemoryMiB?: number;
  /** Where worker output goes (default: this process's stdout/stderr, each line prefixed with `[worker id]`). */
  readonly onLog?: LogHandler;
  /** Options for `dumps` of functions and arguments (e.g. `root`, `ship`). */
  readonly dumpsOptions?: PickleOptions;
  /** Options for `loads` of results. */
  readonly loadsOptions?: PickleOptions;
  /** Serves blobs workers ask for (default: the ship layer's local store). */
  readonly blobServer?: BlobSource;
  /** Show a status line on stderr while many files are sent to a worker (default: when stderr is a TTY). */
  readonly progress?: boolean;
  /** Rewrites remote stacks to point at local files. */
  readonly mapStack?: (stack: string) => string;
}

/** Counters of what travelled, for reports and tests. */
export interface ExecutorStats {
  tasks: number;
  /** Tasks sent with their function's bytes (the rest sent the function hash alone). */
  functionsSent: number;
  functionBytes: number;
  argsBytes: number;
  blobsServed: number;
  blobBytesServed: number;
  workersStarted: number;
  workersCrashed: number;
  workersRecycled: number;
  /** Bytes of TASK and BLOB_RESPONSE frames sent, and of everything received from workers. */
  bytesSent: number;
  bytesReceived: number;
}

/** The surface every executor shares (pool, stdio, queue); `S` is its stats record. */
export interface ExecutorSurface<S> {
  /** Runs `fn(...args)` on a worker; resolves with its (unpickled) return value. @throws RemoteError, WorkerError */
  run<A extends unknown[], R>(fn: (...args: A) => R, ...args: A): Promise<Awaited<R>>;
  /** `run` with per-call options. */
  call<A extends unknown[], R>(fn: (...args: A) => R, args: A, options?: CallOptions): Promise<Awaited<R>>;
  /** Applies `fn` to every item, in order, streaming, with bounded memory. */
  map<T, R>(fn: (item: T) => R, items: Iterable<T> | AsyncIterable<T>, options?: MapOptions): MapResult<Awaited<R>>;
  /**
   * An async function that runs `fn` remotely. `fn` is pickled once, when `wrap` is called (a snapshot of its
   * captured variables and of the local code it uses, like Ray's remote functions); call `wrap` again to pick up
   * changes. `run` pickles the function afresh on every call.
   */
  wrap<A extends unknown[], R>(fn: (...args: A) => R, options?: CallOptions): (...args: A) => Promise<Awaited<R>>;
  /** Resolves once every worker has completed its handshake. @throws WorkerError ERR_MP_PROTOCOL_MISMATCH */
  ready(): Promise<void>;
  /** Graceful by default: waits for submitted calls, then stops the workers. `force` rejects pending calls and kills. */
  close(options?: { force?: boolean }): Promise<void>;
  readonly stats: Readonly<S>;
  /** The code version (ship build) the last pickled function carried: id, files, sizes. */
  readonly lastBuild: ShipBuild | undefined;
}

/** A pool or stdio executor. */
export interface Executor extends ExecutorSurface<ExecutorStats> {
  /** Live worker ids and pids. */
  workers(): { id: string; pid: number | undefined }[];
}

interface Job {
  readonly id: number;
  task: EncodedTask;
  readonly resolve: (v: unknown) => void;
  readonly reject: (e: unknown) => void;
  settled: boolean;
  conn: WorkerConnection | undefined;
  cleanup: (() => void) | undefined;
}

/** Builds an executor over worker processes started by `spawnSpec()`. */
export function createProcessExecutor(name: string, spawnSpec: () => SpawnSpec, options: ExecutorOptions = {}): Executor {
  const size = Math.max(1, options.workers ?? 1);
  const prefetch = Math.max(1, options.prefetch ?? 4);
  const maxVersions = options.maxCodeVersions ?? 64;
  const maxMemory = options.maxMemoryMiB ?? Infinity;
  const abandonGraceMs = 2000;
  const onLog = options.onLog ?? prefixLogs();
  const stats: ExecutorStats = { tasks: 0, functionsSent: 0, functionBytes: 0, argsBytes: 0, blobsServed: 0, blobBytesServed: 0, workersStarted: 0, workersCrashed: 0, workersRecycled: 0, bytesSent: 0, bytesReceived: 0 };
  const jobs = new Map<number, Job>();
  const queue = new Deque<Job>();
  const conns = new Set<WorkerConnection>();
  let nextJob = 1;
  let nextWorker = 1;
  let startFailures = 0;
  let broken: WorkerError | undefined;
  let closing = false;
  let referenced = false;
  let encoding = 0; // calls admitted before close() and still being pickled
  let holds = 0; // pending ready() calls keep the workers referenced too
  let idleWaiters: (() => void)[] = [];
  let closedWaiters: (() => void)[] = [];

  const shipping = createShipping(options.dumpsOptions);
  const dumpsOptions = shipping.dumpsOptions;
  const mapStack = options.mapStack ?? shipping.mapStack;
  const source = options.blobServer ?? shipping.blobServer;
  const blobServer: BlobSource = {
    missing: (hashes) => source.missing(hashes),
    async get(hashes) {
      const show = (options.progress ?? process.stderr.isTTY === true) && hashes.length >= 100;
      if (show) process.stderr.write(`modulepickle: reading ${hashes.length} files for a worker...`);
      const blobs = await source.get(hashes);
      let bytes = 0;
      for (const b of blobs.values()) (stats.blobsServed++, (bytes += b.length));
      stats.blobBytesServed += bytes;
      if (show) process.stderr.write(`\rmodulepickle: sending ${blobs.size} files (${(bytes / 1048576).toFixed(1)} MiB) to a worker\n`);
      return blobs;
    },
  };

  const onBytes = (sent: number, received: number): void => {
    stats.bytesSent += sent;
    stats.bytesReceived += received;
  };
  const activeCount = (): number => {
    let n = 0;
    for (const c of conns) if (!c.retiring) n++;
    return n;
  };

  const spawnWorker = (): void => {
    const conn = new WorkerConnection(`${name}${nextWorker++}`, spawnSpec(), { onResult, onClose, onLog, blobServer, onBytes });
    stats.workersStarted++;
    conns.add(conn);
    conn.setRef(referenced);
    conn.ready.then(() => {
      startFailures = 0;
      dispatch();
    }, () => {});
  };

  const fill = (): void => {
    if (closing || broken) return;
    while (activeCount() < size) spawnWorker();
  };

  // Idle workers are unreferenced so that a forgotten pool does not keep the parent alive. Unreferencing waits a
  // macrotask, so back-to-back calls do not toggle six native handles each time.
  let unrefScheduled = false;
  const setRef = (): void => {
    const want = jobs.size > 0 || closing || holds > 0;
    if (want === referenced) return;
    if (want) {
      referenced = true;
      for (const c of conns) c.setRef(true);
    } else if (!unrefScheduled) {
      unrefScheduled = true;
      setImmediate(() => {
        unrefScheduled = false;
        if (jobs.size > 0 || closing || holds > 0 || !referenced) return;
        referenced = false;
        for (const c of conns) c.setRef(false);
      }).unref();
    }
  };

  const settle = (job: Job): boolean => {
    if (job.settled) return false;
    job.settled = true;
    job.cleanup?.();
    jobs.delete(job.id);
    checkIdle();
    setRef();
    return true;
  };

  const checkIdle = (): void => {
    if (jobs.size > 0 || encoding > 0) return;
    const w = idleWaiters;
    idleWaiters = [];
    for (const f of w) f();
  };

  const dispatch = (): void => {
    while (queue.length > 0) {
      let best: WorkerConnection | undefined;
      for (const c of conns) {
        if (c.retiring || !c.greeted || c.inflight.length >= prefetch || blocked.has(c) || c.abandoned !== undefined) continue;
        if (!best || c.inflight.length < best.inflight.length) best = c;
      }
      if (!best) break;
      const job = queue.shift()!;
      if (job.settled) continue;
      const withFn = !best.functions.has(job.task.fnKey);
      if (withFn) {
        best.functions.add(job.task.fnKey);
        stats.functionsSent++;
        stats.functionBytes += job.task.fnBytes.length;
      }
      stats.argsBytes += job.task.argsBytes.length;
      job.conn = best;
      if (!best.sendTask(job.id, taskBody(job.task, withFn))) {
        const conn = best;
        blocked.add(conn);
        void conn.drained().then(() => {
          blocked.delete(conn);
          dispatch();
        });
      }
    }
  };
  const blocked = new Set<WorkerConnection>();

  function onResult(conn: WorkerConnection, r: ResultFrame): void {
    const at = conn.inflight.indexOf(r.id);
    if (at >= 0) conn.inflight.splice(at, 1);
    if (conn.abandoned === r.id) conn.abandoned = undefined;
    const job = jobs.get(r.id);
    if (job && !job.settled) {
      job.conn = undefined;
      if (r.status === ResultStatus.needFunction || r.status === ResultStatus.cancelled) {
        conn.functions.delete(job.task.fnKey);
        queue.unshift(job);
      } else {
        decodeOutcome(r.status, r.payload, { loadsOptions: options.loadsOptions, mapStack, worker: conn.id }).then(
          (v) => settle(job) && job.resolve(v),
          (e: unknown) => settle(job) && job.reject(e),
        );
      }
    }
    if (!conn.retiring && (r.versions >= maxVersions || r.rssMiB >= maxMemory)) {
      conn.retiring = true;
      stats.workersRecycled++;
      fill();
    }
    if (conn.retiring && !conn.stopping && conn.inflight.length === 0) conn.shutdown();
    dispatch();
  }

  function onClose(conn: WorkerConnection, error: WorkerError | undefined): void {
    conns.delete(conn);
    blocked.delete(conn);
    if (error && !conn.stopping) stats.workersCrashed++;
    // Tasks run one at a time, in send order: the first unanswered one was running, the others never started.
    // (Settled jobs are gone from `jobs`: look the running one up by position before dropping them.)
    const [runningId, ...waitingIds] = conn.inflight;
    const running = runningId === undefined ? undefined : jobs.get(runningId);
    const waiting = waitingIds.map((id) => jobs.get(id)).filter((j): j is Job => j !== undefined && !j.settled);
    if (running && !running.settled) {
      if (error && conn.greeted) settle(running) && running.reject(error);
      else waiting.unshift(running);
    }
    for (const j of waiting.reverse()) (j.conn = undefined), queue.unshift(j);
    if (!conn.greeted && error) {
      startFailures++;
      if (error.code === 'ERR_MP_PROTOCOL_MISMATCH' || error.code === 'ERR_MP_WORKER_START' || startFailures >= 3) {
        broken = error;
        for (let j = queue.shift(); j; j = queue.shift()) settle(j) && j.reject(error);
      }
    }
    if (!closing) fill();
    dispatch();
    if (conns.size === 0) {
      const w = closedWaiters;
      closedWaiters = [];
      for (const f of w) f();
    }
  }

  const abort = (job: Job, err: WorkerError, kill: boolean): void => {
    if (!settle(job)) return;
    job.reject(err);
    const conn = job.conn;
    if (!conn) return;
    if (conn.inflight[0] !== job.id) return conn.cancel(job.id); // queued on the worker: it drops it
    if (kill) return conn.kill();
    // Running, and nobody wants its result (a map stopped early): let it finish, but not forever, and give the
    // worker no new tasks meanwhile.
    conn.abandoned = job.id;
    setTimeout(() => {
      if (conn.inflight[0] === job.id) conn.kill();
    }, abandonGraceMs).unref();
  };

  const submit = (task: EncodedTask, opts: CallOptions = {}, admitted = false): Promise<unknown> => {
    if (broken) return Promise.reject(broken);
    if (closing && !admitted) return Promise.reject(new WorkerError('ERR_MP_CLOSED', `the ${name} executor is closed: create a new one`));
    return new Promise((resolve, reject) => {
      const job: Job = { id: nextJob++, task, resolve, reject, settled: false, conn: undefined, cleanup: undefined };
      const timeout = opts.timeout ?? options.timeout;
      let timer: NodeJS.Timeout | undefined;
      if (timeout !== undefined && timeout !== Infinity) {
        timer = setTimeout(() => abort(job, new WorkerError('ERR_MP_TIMEOUT', `call timed out after ${timeout} ms${job.conn ? ` on worker ${job.conn.id}` : ' (still queued)'}`, job.conn?.id), true), timeout);
      }
      const signal = opts.signal;
      const onAbort = (): void => abort(job, new WorkerError('ERR_MP_ABORTED', `call aborted${job.conn ? ` on worker ${job.conn.id}` : ''}`, job.conn?.id, { cause: signal?.reason }), signal?.reason !== mapStopped);
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort, { once: true });
      job.cleanup = () => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      jobs.set(job.id, job);
      stats.tasks++;
      setRef();
      queue.push(job);
      fill();
      dispatch();
    });
  };

  const call = async (fn: unknown, args: readonly unknown[], opts?: CallOptions): Promise<unknown> => {
    if (broken) throw broken;
    if (closing) throw new WorkerError('ERR_MP_CLOSED', `the ${name} executor is closed: create a new one`);
    encoding++;
    let task: EncodedTask;
    try {
      task = await encodeTask(fn, args, { dumpsOptions: dumpsOptions });
    } finally {
      encoding--;
    }
    const done = submit(task, opts, true);
    checkIdle();
    return done;
  };

  fill();

  const executor: Executor = {
    run: ((fn: unknown, ...args: unknown[]) => call(fn, args)) as Executor['run'],
    call: ((fn: unknown, args: unknown[], opts?: CallOptions) => call(fn, args, opts)) as Executor['call'],
    wrap: ((fn: unknown, opts?: CallOptions) => {
      // Pickled once, now (like Ray's remote functions): later calls send the arguments only.
      const encoded = encodeFunction(fn, dumpsOptions);
      encoded.catch(() => {});
      return async (...args: unknown[]) => call(await encoded, args, opts);
    }) as Executor['wrap'],
    map: ((fn: unknown, items: Iterable<unknown> | AsyncIterable<unknown>, opts: MapOptions = {}) =>
      mapStream(items, opts, size * prefetch, {
        encodeFunction: () => encodeFunction(fn, dumpsOptions),
        submit: (task, callOpts) => submit(task, callOpts) as Promise<unknown[]>,
        dumpsOptions: dumpsOptions,
      })) as Executor['map'],
    async ready() {
      if (broken) throw broken;
      fill();
      holds++;
      setRef();
      try {
        await Promise.all([...conns].map((c) => c.ready));
      } finally {
        holds--;
        setRef();
      }
    },
    async close(opts = {}) {
      closing = true;
      // Keep the event loop alive until the workers are gone (idle workers are unreferenced).
      referenced = true;
      for (const c of conns) c.setRef(true);
      if (opts.force) {
        for (const j of [...jobs.values()]) settle(j) && j.reject(new WorkerError('ERR_MP_CLOSED', `the ${name} executor was closed with force while this call was pending`, j.conn?.id));
        queue.clear();
        for (const c of conns) c.kill();
      } else {
        if (jobs.size > 0 || encoding > 0) await new Promise<void>((r) => idleWaiters.push(r));
        // A worker still busy here runs only abandoned tasks (their calls already settled): stop it now.
        for (const c of conns) c.inflight.length > 0 ? c.kill() : c.shutdown();
      }
      if (conns.size > 0) await new Promise<void>((r) => closedWaiters.push(r));
    },
    stats,
    get lastBuild() {
      return shipping.lastBuild;
    },
    workers: () => [...conns].map((c) => ({ id: c.id, pid: c.pid })),
  };
  return executor;
}
