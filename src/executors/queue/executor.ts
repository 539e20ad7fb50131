/**
 * `createQueueExecutor`: the BullMQ executor. Same surface as `createPool` (`run`, `call`, `map`, `wrap`, `close`),
 * but the workers are `modulepickle worker --redis ... --queue ...` processes on any machine that reaches Redis.
 * Code travels as content-addressed blobs in Redis: before a job is added, the blobs of the code version it needs
 * are checked and only the missing ones uploaded (one edited file, one upload); the manifest marker goes last.
 */
import { setMaxListeners } from 'node:events';
import { WorkerError } from '../../errors.ts';
import type { CallOptions, ExecutorSurface } from '../executor.ts';
import { mapStream, type MapOptions } from '../map.ts';
import { ProjectBlobSource, type PickleOptions, type ShipBuild } from '../pickler.ts';
import { ResultStatus } from '../protocol.ts';
import { createShipping } from '../shipping.ts';
import { decodeOutcome, encodeFunction, encodeTask, taskBody, type EncodedFunction, type EncodedTask } from '../task.ts';
import { QueueClient, type QueueClientOptions } from './client.ts';

/** Options of {@link createQueueExecutor}: the connection and queue, signing, BullMQ job options, and pickling. */
export interface QueueExecutorOptions extends QueueClientOptions {
  /** Default per-call timeout in ms: the call rejects with ERR_MP_TIMEOUT (the job itself is not cancelled). */
  readonly timeout?: number;
  /** Options for `dumps` of functions and arguments (e.g. `root`, `ship`). */
  readonly dumpsOptions?: PickleOptions;
  /** Options for `loads` of results. */
  readonly loadsOptions?: PickleOptions;
  /** Chunks of a `map` in flight at once (default 64). */
  readonly mapConcurrency?: number;
}

/** Counters of what travelled. */
export interface QueueExecutorStats {
  /** Jobs added. */
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
 * @throws WorkerError ERR_MP_BAD_OPTION (synchronously) for a missing queue name
 */
export function createQueueExecutor(options: QueueExecutorOptions): QueueExecutor {
  if (typeof options.queue !== 'string' || options.queue === '' || options.queue.includes(':')) {
    throw new WorkerError('ERR_MP_BAD_OPTION', `createQueueExecutor needs { queue: 'name' } (no ':'), got ${JSON.stringify(options.queue)}`);
  }
  const connecting = QueueClient.connect(options);
  connecting.catch(() => {});
  const stats: QueueExecutorStats = { jobs: 0, uploadedBlobs: 0, uploadedBytes: 0 };

  // Every build the pickler reports, in order; a call takes those reported while it was being pickled (a superset
  // when calls overlap, which only costs an existence check).
  const builds: { seq: number; build: ShipBuild }[] = [];
  let seq = 0;
  const fnBuilds = new Map<string, ShipBuild[]>();
  const user = options.dumpsOptions?.['ship'];
  const userShip = typeof user === 'object' && user !== null ? (user as Record<string, unknown>) : {};
  const userHook = userShip['onBuild'];
  const pickleOptions: PickleOptions =
    user === false
      ? { ...options.dumpsOptions }
      : {
          ...options.dumpsOptions,
          ship: {
            ...userShip,
            onBuild(build: ShipBuild) {
              builds.push({ seq: ++seq, build });
              if (builds.length > 64) builds.shift();
              if (typeof userHook === 'function') (userHook as (b: ShipBuild) => void)(build);
            },
          },
        };
  const shipping = createShipping(pickleOptions);
  const dumpsOptions = shipping.dumpsOptions;

  const since = (from: number): ShipBuild[] => builds.filter((b) => b.seq > from).map((b) => b.build);
  const remember = (fnKey: string, found: ShipBuild[]): ShipBuild[] => {
    if (found.length > 0) {
      fnBuilds.set(fnKey, found);
      if (fnBuilds.size > 256) fnBuilds.delete(fnBuilds.keys().next().value!);
      return found;
    }
    return fnBuilds.get(fnKey) ?? [];
  };

  const encodeFn = async (fn: unknown): Promise<EncodedFunction> => {
    const from = seq;
    const f = await encodeFunction(fn, dumpsOptions);
    remember(f.fnKey, since(from));
    return f;
  };

  /** Uploads what the task needs (code blobs of its builds, the function payload) and submits it. */
  const submit = async (task: EncodedTask, argBuilds: ShipBuild[], opts: CallOptions, retried = false): Promise<unknown> => {
    const client = await connecting;
    const need = new Map<string, ShipBuild>();
    for (const b of [...(fnBuilds.get(task.fnKey) ?? []), ...argBuilds]) need.set(b.id, b);
    const fileHashes: string[] = [];
    for (const b of need.values()) {
      const source = new ProjectBlobSource(b);
      await client.upload({
        manifestId: b.id,
        manifestBytes: Buffer.from(b.text),
        blobIds: [...b.files.keys()],
        load: (id) => source.getSync([id]).get(id) ?? Promise.reject(new WorkerError('ERR_MP_SHIP_CHANGED', `a file of ${b.root} changed while it was being uploaded; call again`)),
      });
      fileHashes.push(...b.files.keys());
    }
    await client.store.ensureBlobs([task.fnKey], () => task.fnBytes);
    try {
      const pending = client.submit({ frame: taskBody(task, false), refs: { manifests: [...need.keys()], blobs: [task.fnKey, ...fileHashes] } });
      const outcome = await withCallOptions(pending, opts.timeout ?? options.timeout, opts.signal);
      syncStats(client);
      return await decodeOutcome(outcome.ok ? ResultStatus.ok : ResultStatus.error, outcome.frame, { loadsOptions: options.loadsOptions, mapStack: shipping.mapStack });
    } catch (err) {
      // A blob we believed present was gone (expired, deleted, Redis replaced): check everything again, once.
      if (!retried && (err as { code?: unknown }).code === 'ERR_MP_BLOB_MISSING') {
        client.store.forget();
        return await submit(task, argBuilds, opts, true);
      }
      throw err;
    }
  };

  const syncStats = (client: QueueClient): void => {
    stats.jobs = client.stats.jobs;
    stats.uploadedBlobs = client.store.uploads.blobs;
    stats.uploadedBytes = client.store.uploads.bytes;
  };

  // Calls admitted before close() are waited for, even while they are still being pickled or uploaded.
  let closing = false;
  const admitted = new Set<Promise<unknown>>();
  const admit = <T>(work: () => Promise<T>): Promise<T> => {
    if (closing) return Promise.reject(new WorkerError('ERR_MP_CLOSED', `the queue executor for '${options.queue}' is closed: create a new one`));
    const p = work();
    const tracked = p.then(
      () => undefined,
      () => undefined,
    );
    admitted.add(tracked);
    void tracked.then(() => admitted.delete(tracked));
    return p;
  };

  const call = (fn: unknown, args: readonly unknown[], opts: CallOptions = {}, encoded?: EncodedFunction): Promise<unknown> => admit(() => callNow(fn, args, opts, encoded));
  const callNow = async (fn: unknown, args: readonly unknown[], opts: CallOptions, encoded?: EncodedFunction): Promise<unknown> => {
    const from = seq;
    const task = await encodeTask(encoded ?? fn, args, { dumpsOptions });
    const found = since(from);
    if (!encoded) remember(task.fnKey, found);
    return await submit(task, encoded ? found : [], opts);
  };

  return {
    run: ((fn: unknown, ...args: unknown[]) => call(fn, args)) as QueueExecutor['run'],
    call: ((fn: unknown, args: unknown[], opts?: CallOptions) => call(fn, args, opts)) as QueueExecutor['call'],
    wrap: ((fn: unknown, opts?: CallOptions) => {
      const encoded = encodeFn(fn);
      encoded.catch(() => {});
      return async (...args: unknown[]) => call(fn, args, opts, await encoded);
    }) as QueueExecutor['wrap'],
    map: ((fn: unknown, items: Iterable<unknown> | AsyncIterable<unknown>, opts: MapOptions = {}) =>
      mapStream(items, opts, options.mapConcurrency ?? 64, {
        encodeFunction: () => encodeFn(fn),
        submit: (task, callOpts) => admit(() => submit(task, [], callOpts)) as Promise<unknown[]>,
        dumpsOptions,
      })) as QueueExecutor['map'],
    async ready() {
      await connecting;
    },
    async close(opts = {}) {
      closing = true;
      const client = await connecting.catch(() => undefined);
      if (client && opts.force) await client.close(opts);
      while (admitted.size > 0) await Promise.all([...admitted]);
      if (client) {
        await client.close(opts);
        syncStats(client);
      }
    },
    stats,
    get lastBuild() {
      return shipping.lastBuild;
    },
    client: () => connecting,
  };
}

async function withCallOptions<T>(p: Promise<T>, timeout: number | undefined, signal: AbortSignal | undefined): Promise<T> {
  if (timeout === undefined && !signal) return await p;
  // A map shares one signal among all its chunks in flight: that is expected, not a listener leak.
  if (signal) setMaxListeners(0, signal);
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        if (timeout !== undefined && timeout !== Infinity) {
          timer = setTimeout(() => reject(new WorkerError('ERR_MP_TIMEOUT', `call timed out after ${timeout} ms (the queued job is not cancelled)`)), timeout);
        }
        if (signal) {
          onAbort = () => reject(new WorkerError('ERR_MP_ABORTED', 'call aborted (the queued job is not cancelled)', undefined, { cause: signal.reason }));
          if (signal.aborted) onAbort();
          else signal.addEventListener('abort', onAbort, { once: true });
        }
      }),
    ]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}
