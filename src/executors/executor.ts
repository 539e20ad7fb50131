/**
 * The executor surface (`run`, `call`, `map`, `wrap`, `ready`, `close`) over a scheduler and one transport. It
 * pickles calls (shipping.ts: code travels as a manifest, blobs on demand), hands them to the {@link Scheduler},
 * and unpickles outcomes (a remote exception becomes a `RemoteError`). `createPool`, `createStdioExecutor` and
 * `createThreadPool` are this with their transport.
 */
import type { LogHandler } from './logs.ts';
import { prefixLogs } from './logs.ts';
import { holdTreeWatches, type BlobSource, type PickleOptions, type ShipBuild } from './pickler.ts';
import { decodeOutcome, encodeFunction, encodeTask, type EncodedFunction } from './task.ts';
import { mapStream, type MapOptions, type MapResult } from './map.ts';
import { createShipping } from './shipping.ts';
import { Scheduler, type CallOptions, type Finished, type SchedulerStats, type Transport } from './scheduler.ts';
import type { TransferStats } from './transports/counters.ts';

export type { CallOptions } from './scheduler.ts';

/** Options shared by every executor built on a local scheduler (pool, stdio, threads). */
export interface ExecutorOptions {
  /** Number of workers. */
  readonly workers?: number;
  /** Tasks sent ahead to each worker (they run one at a time); default 4. */
  readonly prefetch?: number;
  /** Default per-call timeout in milliseconds (none by default). */
  readonly timeout?: number;
  /** Recycle a worker once it has loaded this many code versions (default 64). */
  readonly maxCodeVersions?: number;
  /** Recycle a worker once its resident memory exceeds this many MiB (default: no bound). */
  readonly maxMemoryMiB?: number;
  /** Workers that fail their start this many times in a row break the executor (default 3). */
  readonly maxStartFailures?: number;
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
export interface ExecutorStats extends SchedulerStats, TransferStats {
  /** File blobs sent to workers, and their bytes. */
  blobsServed: number;
  blobBytesServed: number;
  /** Manifests sent to workers (once per code version a worker lacks: payloads name their version by id). */
  manifestsServed: number;
}

/** The surface every executor shares (pool, stdio, threads, queue); `S` is its stats record. */
export interface ExecutorSurface<S> {
  /** Runs `fn(...args)` on a worker; resolves with its (unpickled) return value. @throws RemoteError, WorkerError */
  run<A extends unknown[], R>(fn: (...args: A) => R, ...args: A): Promise<Awaited<R>>;
  /** `run` with per-call options. */
  call<A extends unknown[], R>(fn: (...args: A) => R, args: A, options?: CallOptions): Promise<Awaited<R>>;
  /**
   * Applies `fn` to every item, in order, with bounded memory: `await` it for the results array, or iterate it
   * with `for await` to stream them. @throws RemoteError (with the item's `index`), WorkerError
   */
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

/** A pool, thread pool or stdio executor. */
export interface Executor extends ExecutorSurface<ExecutorStats> {
  /** Live worker ids and pids. */
  workers(): { id: string; pid: number | undefined }[];
}

/** What a transport factory gets from the executor. */
export interface TransportDeps {
  readonly stats: TransferStats;
  readonly onLog: LogHandler;
  /** Answers workers' blob requests (counted in stats, with a progress line for big sends). */
  readonly blobServer: BlobSource;
  /** `dumps` options the executor pickles with (transports that pickle results or messages themselves). */
  readonly dumpsOptions: PickleOptions;
}

/** Builds an executor over the lanes `makeTransport` opens. */
export function createExecutor(makeTransport: (deps: TransportDeps) => Transport, options: ExecutorOptions = {}, shippingOptions: { manifestById?: boolean } = {}): Executor {
  const stats: ExecutorStats = {
    tasks: 0, functionsSent: 0, functionBytes: 0, argsBytes: 0, blobsServed: 0, blobBytesServed: 0, manifestsServed: 0,
    workersStarted: 0, workersCrashed: 0, workersRecycled: 0, bytesSent: 0, bytesReceived: 0,
  };
  // Transports whose workers fetch from our blob server can name the code version by id (unless the caller brings
  // its own blob server, which may not serve manifests).
  const shipping = createShipping(options.dumpsOptions, 8, shippingOptions.manifestById === true && options.blobServer === undefined);
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
      for (const [h, b] of blobs) {
        if (shipping.isManifest(h)) stats.manifestsServed++;
        else (stats.blobsServed++, (bytes += b.length));
      }
      stats.blobBytesServed += bytes;
      if (show) process.stderr.write(`\rmodulepickle: sending ${blobs.size} files (${(bytes / 1048576).toFixed(1)} MiB) to a worker\n`);
      return blobs;
    },
  };
  // the watched project trees stay open while an executor is (closed with the last one)
  const releaseWatches = holdTreeWatches();
  const transport = makeTransport({ stats, onLog: options.onLog ?? prefixLogs(), blobServer, dumpsOptions });
  const scheduler = new Scheduler(transport, { ...options, stats });

  // Threads: shared memory travels shared, and what the caller marks for transfer moves (see transfer()).
  const shares = transport.sharesMemory === true;
  const beside = (opts: CallOptions | undefined) => (shares ? { transfer: opts?.transfer } : undefined);
  const outcome = (done: Finished) =>
    decodeOutcome(done.status, done.payload, { loadsOptions: options.loadsOptions, mapStack, worker: done.worker, beside: done.beside?.buffers });

  const call = async (fn: unknown, args: readonly unknown[], opts?: CallOptions): Promise<unknown> => {
    const done = await scheduler.encodeAndSubmit(() => encodeTask(fn, args, { dumpsOptions, beside: beside(opts) }), opts);
    return await outcome(done);
  };

  return {
    run: ((fn: unknown, ...args: unknown[]) => call(fn, args)) as Executor['run'],
    call: ((fn: unknown, args: unknown[], opts?: CallOptions) => call(fn, args, opts)) as Executor['call'],
    wrap: ((fn: unknown, opts?: CallOptions) => {
      // Pickled once, now (like Ray's remote functions): later calls send the arguments only.
      const encoded: Promise<EncodedFunction> = encodeFunction(fn, dumpsOptions);
      encoded.catch(() => {});
      return async (...args: unknown[]) => call(await encoded, args, opts);
    }) as Executor['wrap'],
    map: ((fn: unknown, items: Iterable<unknown> | AsyncIterable<unknown>, opts: MapOptions = {}) =>
      mapStream(items, opts, scheduler.capacity, {
        encodeFunction: () => encodeFunction(fn, dumpsOptions),
        submit: async (task, callOpts) => (await outcome(await scheduler.submit(task, callOpts))) as unknown[],
        dumpsOptions,
        beside: beside(opts),
      })) as Executor['map'],
    ready: () => scheduler.ready(),
    close: async (opts) => {
      try {
        await scheduler.close(opts);
      } finally {
        releaseWatches();
      }
    },
    stats,
    get lastBuild() {
      return shipping.lastBuild;
    },
    workers: () => scheduler.lanes().map((l) => ({ id: l.id, pid: l.pid })),
  };
}
