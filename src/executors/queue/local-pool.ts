/**
 * The queue worker's own local pool: worker processes speaking the executors' protocol (`WorkerConnection`,
 * `dist/entry/worker.js`), fed with already-pickled task bodies. User code runs in those processes, so CPU-bound
 * code never blocks BullMQ's lock renewal in the queue worker, and a task that crashes its process fails that
 * attempt only: the process is replaced and the queue worker keeps going. Results come back still pickled
 * (they travel on to the client as they are).
 */
import { WorkerError } from '../../errors.ts';
import { WorkerConnection, type LogHandler } from '../connection.ts';
import { prefixLogs } from '../logs.ts';
import type { BlobSource } from '../pickler.ts';
import { workerEntryPath } from '../pool.ts';
import { ResultStatus, type ResultFrame } from '../protocol.ts';
import { taskBody, type EncodedTask, type TaskOutcome } from '../task.ts';

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

interface Task {
  readonly id: number;
  readonly task: EncodedTask;
  readonly resolve: (o: TaskOutcome) => void;
  readonly reject: (e: Error) => void;
}

/** A fixed-size set of local worker processes that run pickled tasks one at a time each. */
export class LocalPool {
  readonly #options: LocalPoolOptions;
  readonly #size: number;
  readonly #conns = new Set<WorkerConnection>();
  /** Tasks sent to each process, in send order: the first one is running, the others wait in its queue. */
  readonly #sent = new Map<WorkerConnection, Task[]>();
  readonly #prefetch: number;
  readonly #queue: Task[] = [];
  readonly #command: string[];
  readonly #env: NodeJS.ProcessEnv;
  readonly #onLog: LogHandler;
  #next = 1;
  #nextWorker = 1;
  #startFailures = 0;
  #broken: WorkerError | undefined;
  #closing = false;
  #closed: (() => void) | undefined;
  /** Processes started, crashed and recycled so far. */
  readonly stats = { started: 0, crashed: 0, recycled: 0 };

  constructor(options: LocalPoolOptions) {
    this.#options = options;
    this.#size = Math.max(1, options.processes ?? 1);
    this.#prefetch = Math.max(1, options.prefetch ?? 4);
    this.#command = [process.execPath, ...(options.execArgv ?? []), workerEntryPath()];
    this.#env = { ...process.env };
    if (options.cacheDir) this.#env['MODULEPICKLE_CACHE'] = options.cacheDir;
    this.#onLog = options.onLog ?? prefixLogs();
    this.#fill();
  }

  /** Pids of the live processes. */
  pids(): number[] {
    return [...this.#conns].map((c) => c.pid).filter((p): p is number => p !== undefined);
  }

  /** Resolves once every process has completed its handshake. */
  async ready(): Promise<void> {
    await Promise.all([...this.#conns].map((c) => c.ready));
  }

  /**
   * Runs a pickled task; resolves with its pickled outcome.
   * @throws WorkerError ERR_MP_WORKER_KILLED / ERR_MP_WORKER_EXITED when the task's process died; ERR_MP_CLOSED
   */
  run(task: EncodedTask): Promise<TaskOutcome> {
    if (this.#broken) return Promise.reject(this.#broken);
    if (this.#closing) return Promise.reject(new WorkerError('ERR_MP_CLOSED', 'the local pool is closing'));
    return new Promise((resolve, reject) => {
      this.#queue.push({ id: this.#next++, task, resolve, reject });
      this.#dispatch();
    });
  }

  #fill(): void {
    if (this.#closing || this.#broken) return;
    let active = 0;
    for (const c of this.#conns) if (!c.retiring) active++;
    for (; active < this.#size; active++) this.#spawn();
  }

  #spawn(): void {
    const conn = new WorkerConnection(`q${this.#nextWorker++}`, { command: this.#command, cwd: this.#options.cwd, env: this.#env }, {
      onResult: (c, r) => this.#onResult(c, r),
      onClose: (c, e) => this.#onClose(c, e),
      onLog: this.#onLog,
      blobServer: this.#options.blobServer,
    });
    this.stats.started++;
    this.#conns.add(conn);
    conn.ready.then(
      () => {
        this.#startFailures = 0;
        this.#dispatch();
      },
      () => {},
    );
  }

  #dispatch(): void {
    while (this.#queue.length > 0) {
      let best: WorkerConnection | undefined;
      let bestLoad = Infinity;
      for (const c of this.#conns) {
        if (c.retiring || !c.greeted) continue;
        const load = this.#sent.get(c)?.length ?? 0;
        if (load < this.#prefetch && load < bestLoad) {
          best = c;
          bestLoad = load;
        }
      }
      if (!best) return;
      const t = this.#queue.shift()!;
      const withFn = !best.functions.has(t.task.fnKey);
      if (withFn) best.functions.add(t.task.fnKey);
      let sent = this.#sent.get(best);
      if (!sent) this.#sent.set(best, (sent = []));
      sent.push(t);
      best.sendTask(t.id, taskBody(t.task, withFn));
    }
  }

  #onResult(conn: WorkerConnection, r: ResultFrame): void {
    const at = conn.inflight.indexOf(r.id);
    if (at >= 0) conn.inflight.splice(at, 1);
    const sent = this.#sent.get(conn) ?? [];
    const i = sent.findIndex((t) => t.id === r.id);
    const t = i >= 0 ? sent.splice(i, 1)[0] : undefined;
    if (t) {
      if (r.status === ResultStatus.needFunction || r.status === ResultStatus.cancelled) {
        conn.functions.delete(t.task.fnKey);
        this.#queue.unshift(t);
      } else {
        t.resolve({ status: r.status as ResultStatus, payload: r.payload.slice() });
      }
    }
    const max = this.#options.maxCodeVersions ?? 64;
    const maxMem = this.#options.maxMemoryMiB ?? Infinity;
    if (!conn.retiring && (r.versions >= max || r.rssMiB >= maxMem)) {
      conn.retiring = true;
      this.stats.recycled++;
      this.#fill();
    }
    if (conn.retiring && !conn.stopping && sent.length === 0) conn.shutdown();
    this.#dispatch();
  }

  #onClose(conn: WorkerConnection, error: WorkerError | undefined): void {
    this.#conns.delete(conn);
    const [running, ...waiting] = this.#sent.get(conn) ?? [];
    this.#sent.delete(conn);
    if (error && !conn.stopping) this.stats.crashed++;
    // Tasks run one at a time, in send order: the first was running when the process died, the others never started.
    if (running) {
      if (conn.greeted && error) running.reject(error);
      else waiting.unshift(running);
    }
    this.#queue.unshift(...waiting);
    if (!conn.greeted && error) {
      if (error.code === 'ERR_MP_PROTOCOL_MISMATCH' || error.code === 'ERR_MP_WORKER_START' || ++this.#startFailures >= 3) {
        this.#broken = error;
        for (const q of this.#queue.splice(0)) q.reject(error);
      }
    }
    if (!this.#closing) this.#fill();
    this.#dispatch();
    if (this.#conns.size === 0) this.#closed?.();
  }

  /** Waits for running and queued tasks (unless `force`), then stops the processes. */
  async close(options: { force?: boolean } = {}): Promise<void> {
    this.#closing = true;
    if (options.force) {
      const err = new WorkerError('ERR_MP_CLOSED', 'the local pool was closed with force');
      for (const q of this.#queue.splice(0)) q.reject(err);
      for (const c of this.#conns) c.kill();
    } else {
      while (this.#queue.length > 0 || [...this.#sent.values()].some((l) => l.length > 0)) await new Promise((r) => setTimeout(r, 10));
      for (const c of this.#conns) c.shutdown();
    }
    if (this.#conns.size > 0) await new Promise<void>((r) => (this.#closed = r));
  }
}
