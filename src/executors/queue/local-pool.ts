/**
 * The queue worker's own local pool: the shared scheduler over the process transport (`dist/entry/worker.js`),
 * fed with already-pickled task bodies. User code runs in those processes, so CPU-bound code never blocks
 * BullMQ's lock renewal in the queue worker, and a task that crashes its process fails that attempt only: the
 * process is replaced and the queue worker keeps going. Results come back still pickled (they travel on to the
 * client as they are).
 */
import type { LogHandler } from '../logs.ts';
import { prefixLogs } from '../logs.ts';
import type { BlobSource } from '../pickler.ts';
import { workerEntryPath } from '../pool.ts';
import { Scheduler, type CallOptions, type SchedulerStats } from '../scheduler.ts';
import type { EncodedTask, TaskOutcome } from '../task.ts';
import { processTransport } from '../transports/process.ts';

/** Options of {@link LocalPool}. */
export interface LocalPoolOptions {
  /** Worker processes (default 1). */
  readonly processes?: number;
  /** Cache folder for blobs and materialized trees, shared by the processes (`MODULEPICKLE_CACHE`). */
  readonly cacheDir?: string;
  /** Working directory of the processes (default: this process's). */
  readonly cwd?: string;
  /** Where the processes' blob requests go (e.g. the Redis blob store). */
  readonly blobServer: BlobSource;
  /** Recycle a process after it loaded this many code versions (default 64). */
  readonly maxCodeVersions?: number;
  /** Recycle a process above this resident memory in MiB (default: no bound). */
  readonly maxMemoryMiB?: number;
  readonly onLog?: LogHandler;
  /** Tasks sent ahead to each process (they run one at a time there); default 4. Saves wake-ups under load. */
  readonly prefetch?: number;
  /** Extra `node` flags for the processes. */
  readonly execArgv?: readonly string[];
}

/** A fixed-size set of local worker processes that run pickled tasks one at a time each. */
export class LocalPool {
  readonly #scheduler: Scheduler;
  readonly #stats: SchedulerStats = { tasks: 0, workersStarted: 0, workersCrashed: 0, workersRecycled: 0 };

  constructor(options: LocalPoolOptions) {
    const env = { ...process.env };
    if (options.cacheDir) env['MODULEPICKLE_CACHE'] = options.cacheDir;
    const spec = { command: [process.execPath, ...(options.execArgv ?? []), workerEntryPath()], cwd: options.cwd, env };
    const transport = processTransport({
      name: 'local',
      prefix: 'q',
      size: Math.max(1, options.processes ?? 1),
      prefetch: Math.max(1, options.prefetch ?? 4),
      spawn: () => spec,
      onLog: options.onLog ?? prefixLogs(),
      blobServer: options.blobServer,
    });
    this.#scheduler = new Scheduler(transport, { maxCodeVersions: options.maxCodeVersions, maxMemoryMiB: options.maxMemoryMiB, stats: this.#stats });
  }

  /** Processes started, crashed and recycled so far. */
  get stats(): { started: number; crashed: number; recycled: number } {
    return { started: this.#stats.workersStarted, crashed: this.#stats.workersCrashed, recycled: this.#stats.workersRecycled };
  }

  /** Pids of the live processes. */
  pids(): number[] {
    return this.#scheduler.lanes().map((l) => l.pid).filter((p): p is number => p !== undefined);
  }

  /** Resolves once every process has completed its handshake. */
  ready(): Promise<void> {
    return this.#scheduler.ready();
  }

  /**
   * Runs a pickled task; resolves with its pickled outcome. `signal`/`timeout` stop it (its process is replaced).
   * @throws WorkerError ERR_MP_WORKER_KILLED / ERR_MP_WORKER_EXITED when the task's process died; ERR_MP_CLOSED
   */
  async run(task: EncodedTask, options?: CallOptions): Promise<TaskOutcome> {
    const done = await this.#scheduler.submit(task, options);
    // The payload is a view into a receive buffer: it travels on after this, so it gets its own copy.
    return { status: done.status, payload: done.payload.slice() };
  }

  /** Waits for running and queued tasks (unless `force`), then stops the processes. */
  close(options: { force?: boolean } = {}): Promise<void> {
    return this.#scheduler.close(options);
  }
}
