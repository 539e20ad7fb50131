/**
 * The queue transport: the executors' shared scheduler (scheduler.ts) sees one lane, the connection to a BullMQ
 * queue, that takes up to `window` tasks at once. Sending a task uploads what its code versions lack in Redis (the
 * manifest marker last) and its function payload, then adds the job (QueueClient batches the jobs of one tick).
 * Stopping a task cancels its job: one still waiting is removed, one running is stopped on its worker and removed
 * once it ended, so per-call timeouts and aborts mean for the queue what they mean for the pool.
 */
import { ModulePickleError, WorkerError } from '../../errors.ts';
import { ProjectBlobSource, type ShipBuild } from '../pickler.ts';
import { ResultStatus } from '../protocol.ts';
import type { Lane, LaneEvents, StopMode, Transport } from '../scheduler.ts';
import { taskBody, type EncodedTask } from '../task.ts';
import type { TransferStats } from '../transports/counters.ts';
import { QueueClient, type FrameOutcome, type QueueClientOptions } from './client.ts';
import type { CodeVersions } from './code-versions.ts';

/** Options of {@link queueTransport}. */
export interface QueueTransportOptions {
  readonly client: QueueClientOptions;
  /** Jobs in Redis at once (waiting or running); more tasks wait in the scheduler. */
  readonly window: number;
  /** The builds the pickler reported, to find each task's code versions. */
  readonly versions: CodeVersions;
  readonly stats: TransferStats;
  /** Called with the client once connected (stats and tools read it). */
  readonly onClient?: (client: QueueClient) => void;
}

/** A transport with one lane: the connection to the queue. */
export function queueTransport(o: QueueTransportOptions): Transport {
  return {
    name: `queue '${o.client.queue}'`,
    prefix: 'r',
    size: 1,
    window: o.window,
    open: (id, events) => new QueueLane(id, o, events),
  };
}

interface Entry {
  readonly id: number;
  readonly task: EncodedTask;
  /** The BullMQ job id once enqueued. */
  jobId: string | undefined;
  /** Stopped before its job was enqueued: never add it. */
  stopped: boolean;
  /** Sent again once already, after a blob its worker needed was gone. */
  retried: boolean;
}

class QueueLane implements Lane {
  readonly id: string;
  readonly ready: Promise<QueueClient>;
  greeted = false;
  retiring = false;
  stopping = false;
  readonly #o: QueueTransportOptions;
  readonly #events: LaneEvents;
  readonly #entries = new Map<number, Entry>();
  #client: QueueClient | undefined;
  #ref = true;
  #ended = false;

  constructor(id: string, o: QueueTransportOptions, events: LaneEvents) {
    this.id = id;
    this.#o = o;
    this.#events = events;
    this.ready = QueueClient.connect(o.client);
    this.ready.then(
      (client) => {
        this.#client = client;
        this.greeted = true;
        client.setRef(this.#ref);
        o.onClient?.(client);
        if (this.stopping) void this.#end(false);
      },
      (err: unknown) => {
        this.#ended = true;
        const error = err instanceof WorkerError ? err : new WorkerError('ERR_MP_REDIS', String((err as Error)?.message ?? err), undefined, { cause: err });
        events.closed(this, error, [], [...this.#entries.keys()]);
      },
    );
  }

  load(): number {
    return this.#entries.size;
  }

  accepting(): boolean {
    return this.greeted && !this.retiring && this.#entries.size < this.#o.window;
  }

  send(id: number, task: EncodedTask): void {
    const entry: Entry = { id, task, jobId: undefined, stopped: false, retried: false };
    this.#entries.set(id, entry);
    void this.#run(entry);
  }

  async #run(entry: Entry): Promise<void> {
    const client = this.#client!;
    let outcome: FrameOutcome;
    try {
      const { refs, keep } = await this.#upload(client, entry.task);
      if (entry.stopped) return;
      const stats = this.#o.stats;
      const frame = taskBody(entry.task, false);
      stats.argsBytes += entry.task.argsBytes.length;
      stats.bytesSent += frame.length;
      const handle = client.enqueue({ frame, refs, keep });
      entry.jobId = handle.jobId;
      await handle.added;
      outcome = await handle.outcome;
    } catch (err) {
      if (entry.stopped || this.#entries.get(entry.id) !== entry) return;
      // A blob we believed present was gone (expired, deleted, Redis replaced): check everything again, once.
      if (!entry.retried && (err as { code?: unknown }).code === 'ERR_MP_BLOB_MISSING') {
        entry.retried = true;
        entry.jobId = undefined;
        client.store.forget();
        return await this.#run(entry);
      }
      this.#entries.delete(entry.id);
      this.#events.fail(this, entry.id, asWorkerError(err));
      this.#wake();
      return;
    }
    if (this.#entries.get(entry.id) !== entry) return;
    this.#entries.delete(entry.id);
    this.#o.stats.bytesReceived += outcome.frame.length;
    this.#events.result(this, entry.id, { status: outcome.ok ? ResultStatus.ok : ResultStatus.error, payload: outcome.frame });
    this.#wake();
  }

  /** Makes the task's code versions and function payload present in Redis; returns what the job references. */
  async #upload(client: QueueClient, task: EncodedTask): Promise<{ refs: { manifests: string[]; blobs: string[] }; keep: () => Iterable<string> }> {
    const versions = this.#o.versions;
    const manifests = versions.idsOf(task);
    // The job names its code versions and function payload; the versions' files (thousands of ids) stay out of it,
    // and this client keeps them alive while the job is in flight.
    const builds: ShipBuild[] = [];
    for (const id of manifests) {
      const build = versions.build(id);
      if (!build) {
        // Pickled long ago (a `wrap` outlived many builds): fine as long as Redis still has that version.
        if ((await client.store.missingKeys([client.store.manifestKey(id)])).length === 0) continue;
        throw new WorkerError('ERR_MP_SHIP_CHANGED', `code version ${id.slice(0, 12)} of this function is neither in Redis nor known to this process any more; wrap or pickle the function again`);
      }
      builds.push(build);
      // Uploaded or checked recently: nothing to do (the usual case of a warm call).
      if (client.store.knows(client.store.manifestKey(id))) continue;
      const source = new ProjectBlobSource(build);
      await client.upload({
        manifestId: build.id,
        manifestBytes: Buffer.from(build.text),
        blobIds: [...build.files.keys()],
        load: (h) => source.getSync([h]).get(h) ?? Promise.reject(new WorkerError('ERR_MP_SHIP_CHANGED', `a file of ${build.root} changed while it was being uploaded; call again`)),
      });
    }
    const before = client.store.uploads.blobs;
    await client.store.ensureBlobs([task.fnKey], () => task.fnBytes);
    if (client.store.uploads.blobs > before) {
      this.#o.stats.functionsSent++;
      this.#o.stats.functionBytes += task.fnBytes.length;
    }
    return { refs: { manifests, blobs: [task.fnKey] }, keep: () => builds.flatMap((b) => [...b.files.keys()]) };
  }

  stop(id: number, mode: StopMode, reason?: string): void {
    const entry = this.#entries.get(id);
    if (!entry) return;
    this.#entries.delete(id);
    entry.stopped = true;
    if (entry.jobId !== undefined && this.#client) {
      const why = reason === 'ERR_MP_TIMEOUT' ? 'timeout' : reason === 'ERR_MP_ABORTED' ? (mode === 'kill' ? 'abort' : 'map stopped early') : reason === 'ERR_MP_CLOSED' ? 'close' : 'stopped';
      void this.#client.cancel(entry.jobId, why, { stop: mode === 'kill' }).catch(() => {});
    }
    this.#wake();
  }

  retire(): void {
    this.retiring = true;
    if (this.#entries.size === 0) this.shutdown();
  }

  shutdown(): void {
    this.stopping = true;
    this.retiring = true;
    if (this.#client) void this.#end(false);
  }

  kill(): void {
    this.stopping = true;
    this.retiring = true;
    for (const id of [...this.#entries.keys()]) this.stop(id, 'kill', 'ERR_MP_CLOSED');
    if (this.#client) void this.#end(true);
  }

  setRef(ref: boolean): void {
    this.#ref = ref;
    this.#client?.setRef(ref);
  }

  async #end(force: boolean): Promise<void> {
    if (this.#ended) return;
    this.#ended = true;
    await this.#client!.close({ force }).catch(() => {});
    const running = [...this.#entries.keys()];
    this.#entries.clear();
    this.#events.closed(this, undefined, running, []);
  }

  // Room freed in the window (a call settled or was stopped): the scheduler may send more.
  #wake(): void {
    if (!this.stopping) this.#events.wake(this);
  }
}

// The scheduler rejects the call with it: a typed error of another family (a ShipError from an upload, say) stays
// what it is.
function asWorkerError(err: unknown): WorkerError {
  if (err instanceof ModulePickleError) return err as WorkerError;
  const e = err as { code?: unknown; message?: unknown };
  return new WorkerError(typeof e?.code === 'string' ? e.code : 'ERR_MP_REDIS', String(e?.message ?? err), undefined, { cause: err });
}
