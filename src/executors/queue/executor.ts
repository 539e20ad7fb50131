/**
 * `createQueueExecutor`: the BullMQ executor. Same surface and the same scheduler as `createPool` (`run`, `call`,
 * `map`, `wrap`, `close`; per-call `timeout` and `signal`), but the workers are `modulepickle worker --redis ...
 * --queue ...` processes on any machine that reaches Redis, behind one queue lane (lane.ts). Code travels as
 * content-addressed blobs in Redis: before a job is added, the blobs of the code version it needs are checked and
 * only the missing ones uploaded (one edited file, one upload); the manifest marker goes last. A call that times
 * out or is aborted cancels its job: removed while it waits, stopped on its worker while it runs.
 */
import { WorkerError } from '../../errors.ts';
import { createExecutor, type ExecutorStats, type ExecutorSurface } from '../executor.ts';
import type { PickleOptions, ShipBuild } from '../pickler.ts';
import type { QueueClient, QueueClientOptions } from './client.ts';
import { CodeVersions } from './code-versions.ts';
import { queueTransport } from './lane.ts';

/** Options of {@link createQueueExecutor}: the connection and queue, signing, BullMQ job options, and pickling. */
export interface QueueExecutorOptions extends QueueClientOptions {
  /** Default per-call timeout in ms: the call rejects with ERR_MP_TIMEOUT and its job is cancelled. */
  readonly timeout?: number;
  /** Options for `dumps` of functions and arguments (e.g. `root`, `ship`). */
  readonly dumpsOptions?: PickleOptions;
  /** Options for `loads` of results. */
  readonly loadsOptions?: PickleOptions;
  /**
   * Jobs this executor keeps in Redis at once, waiting or running (default 64); more calls wait here, where a
   * timeout or abort costs nothing. It is also the default number of `map` chunks in flight.
   */
  readonly maxInFlight?: number;
  /** @deprecated The old name of `maxInFlight`. */
  readonly mapConcurrency?: number;
  /** Rewrites remote stacks to point at local files (default: the executor's own mapping). */
  readonly mapStack?: (stack: string) => string;
}

/** Counters of what travelled: the executors' counters, and the queue's own. */
export interface QueueExecutorStats extends ExecutorStats {
  /** Jobs added to Redis. */
  jobs: number;
  /** Blobs (code files, function payloads, big arguments) uploaded to Redis, and their bytes (manifest markers too). */
  uploadedBlobs: number;
  uploadedBytes: number;
}

/** The queue executor: the executors' surface over BullMQ. */
export interface QueueExecutor extends ExecutorSurface<QueueExecutorStats> {
  /** The transport (blob store, pending count), for tests and tools. */
  client(): Promise<QueueClient>;
}

/**
 * Creates a queue executor. It connects in the background; `ready()` or the first call reports connection errors.
 * @throws WorkerError ERR_MP_BAD_OPTION (synchronously) for a missing queue name or a bad `maxInFlight`
 */
export function createQueueExecutor(options: QueueExecutorOptions): QueueExecutor {
  if (typeof options.queue !== 'string' || options.queue === '' || options.queue.includes(':')) {
    throw new WorkerError('ERR_MP_BAD_OPTION', `createQueueExecutor needs { queue: 'name' } (no ':'), got ${JSON.stringify(options.queue)}`);
  }
  const window = options.maxInFlight ?? options.mapConcurrency ?? 64;
  if (!Number.isInteger(window) || window < 1) throw new WorkerError('ERR_MP_BAD_OPTION', `maxInFlight must be an integer >= 1, got ${String(window)}`);

  const versions = new CodeVersions();
  const user = options.dumpsOptions?.['ship'];
  const userShip = typeof user === 'object' && user !== null ? (user as Record<string, unknown>) : {};
  const userHook = userShip['onBuild'];
  const dumpsOptions: PickleOptions =
    user === false
      ? { ...options.dumpsOptions }
      : {
          ...options.dumpsOptions,
          ship: {
            ...userShip,
            onBuild(build: ShipBuild) {
              versions.onBuild(build);
              if (typeof userHook === 'function') (userHook as (b: ShipBuild) => void)(build);
            },
          },
        };

  let resolveClient!: (c: QueueClient) => void;
  const client = new Promise<QueueClient>((resolve) => (resolveClient = resolve));
  let connected: QueueClient | undefined;
  const ex = createExecutor((deps) => queueTransport({ client: options, window, versions, stats: deps.stats, onClient: (c) => resolveClient((connected = c)) }), {
    timeout: options.timeout,
    dumpsOptions,
    loadsOptions: options.loadsOptions,
    mapStack: options.mapStack,
    onLog: () => {},
    // One connection: if it cannot be made (Redis down, no key, no bullmq), the executor is broken at once.
    maxStartFailures: 1,
  });

  return {
    run: ex.run,
    call: ex.call,
    map: ex.map,
    wrap: ex.wrap,
    ready: ex.ready,
    close: ex.close,
    get stats(): QueueExecutorStats {
      const store = connected?.store.uploads;
      return { ...ex.stats, jobs: connected?.stats.jobs ?? 0, uploadedBlobs: store?.blobs ?? 0, uploadedBytes: store?.bytes ?? 0 };
    },
    get lastBuild() {
      return ex.lastBuild;
    },
    async client() {
      // A connection that failed breaks the executor: report that instead of waiting forever.
      const broken = ex.ready().then(() => client);
      return await Promise.race([client, broken]);
    },
  };
}
