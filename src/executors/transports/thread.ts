/**
 * The thread transport: each lane is one `node:worker_threads` Worker running the worker loop
 * (`dist/entry/thread.js`) with the protocol's frames as messages on its port. Buffers can travel beside frames:
 * a SharedArrayBuffer arrives shared, and buffers the caller marked with `transfer` are moved, not copied.
 * A thread that calls `process.exit`, throws outside a task or runs out of heap (`resourceLimits`) ends alone:
 * its running task fails with a `WorkerError`, and the scheduler starts another thread.
 */
import { resolve } from 'node:path';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import { WorkerError } from '../../errors.ts';
import { portChannel, portFrame } from '../channel.ts';
import { defaultCacheDir, dropThreadLeftovers } from '../pickler.ts';
import type { EncodedTask } from '../task.ts';
import type { LaneEvents, Transport } from '../scheduler.ts';
import { FramedLane, type FramedLaneOptions } from './framed-lane.ts';

/** Options of {@link threadTransport}. */
export interface ThreadTransportOptions extends FramedLaneOptions {
  readonly size: number;
  /** The thread entry (`dist/entry/thread.js`). */
  readonly entry: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly execArgv?: readonly string[];
  readonly resourceLimits?: ResourceLimits;
}

/** Lanes over worker threads. */
export function threadTransport(o: ThreadTransportOptions): Transport {
  return { name: 'threads', prefix: 't', size: o.size, window: o.prefetch, sharesMemory: true, open: (id, events) => new ThreadLane(id, o, events) };
}

/** One worker thread. */
class ThreadLane extends FramedLane {
  readonly worker: Worker;
  /** Why the thread ended, when it says so before its exit (out of memory, an uncaught exception). */
  #cause: WorkerError | undefined;
  readonly #label: string;

  constructor(id: string, o: ThreadTransportOptions, events: LaneEvents) {
    super(id, o, events);
    this.worker = new Worker(o.entry, {
      env: o.env ?? process.env,
      execArgv: o.execArgv ? [...o.execArgv] : undefined,
      resourceLimits: o.resourceLimits,
    });
    const thread = this.worker.threadId;
    this.#label = `thread ${id} (thread id ${thread})`;
    this.open(portChannel(this.worker));
    this.worker.on('message', (msg: unknown) => {
      const frame = portFrame(msg);
      if (!frame) return this.fail(new WorkerError('ERR_MP_PROTOCOL_GARBAGE', `${this.#label} posted a message that is not a frame`, id));
      if (o.stats) o.stats.bytesReceived += frame.body.length;
      this.onFrame(frame);
    });
    // The worker loop sends console output as LOG frames; what it cannot capture (before it starts) reaches this
    // process's stdout/stderr directly. (Reading the thread's stdio streams here would keep the process alive.)
    this.worker.on('error', (err: Error & { code?: string }) => {
      this.#cause ??=
        err.code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? new WorkerError('ERR_MP_WORKER_OUT_OF_MEMORY', `${this.#label} ran out of memory (${err.message}): raise the resourceLimits option, or split the work`, id, { cause: err })
          : new WorkerError(this.greeted ? 'ERR_MP_WORKER_UNCAUGHT' : 'ERR_MP_WORKER_START', `${this.#label} stopped on an uncaught exception: ${err.message}`, id, { cause: err });
    });
    this.worker.on('exit', (code) => {
      // Its leases would keep its trees from the GC for as long as this process lives.
      const env = o.env ?? process.env;
      dropThreadLeftovers(thread, env['MODULEPICKLE_CACHE'] ? resolve(env['MODULEPICKLE_CACHE']) : defaultCacheDir());
      const error = this.fatal ?? this.#cause ?? (this.stopping ? undefined : this.#exitError(code));
      this.ended(error);
    });
  }

  protected get label(): string {
    return this.#label;
  }

  /** A task whose buffers move goes to an idle thread only: it starts at once, so it is never handed back. */
  accepts(task: EncodedTask): boolean {
    return (task.beside?.transfer.length ?? 0) === 0 || this.load() === 0;
  }

  protected terminate(): void {
    void this.worker.terminate();
  }

  setRef(ref: boolean): void {
    if (ref) this.worker.ref();
    else this.worker.unref();
  }

  #exitError(code: number): WorkerError {
    const err = new WorkerError('ERR_MP_WORKER_EXITED', `${this.#label} exited with code ${code} (process.exit in a thread ends that thread)`, this.id);
    Object.defineProperty(err, 'exitCode', { value: code, enumerable: true });
    return err;
  }
}
