/**
 * The client end of the worker protocol, whatever carries it: the handshake, sending tasks (the function's bytes
 * only the first time a worker sees it), answering the worker's blob requests, forwarding its output, dropping or
 * stopping tasks whose calls settled, and recycling. A transport subclasses it with how frames travel (a process's
 * pipes, a thread's port), how the worker is stopped, and how its end is reported ({@link FramedLane.ended}).
 */
import { WorkerError } from '../../errors.ts';
import type { Channel, ChannelFrame } from '../channel.ts';
import {
  FrameType,
  PROTOCOL_VERSION,
  ResultStatus,
  checkHello,
  decodeHello,
  decodeResult,
  encodeBlobResponse,
  encodeHello,
  idBody,
  readU32,
  text,
} from '../protocol.ts';
import { FORMAT_VERSION, type BlobSource } from '../pickler.ts';
import { decodeFatal } from '../worker-loop.ts';
import { taskBody, type EncodedTask } from '../task.ts';
import type { Lane, LaneEvents, StopMode } from '../scheduler.ts';
import type { LogHandler } from '../logs.ts';
import type { TransferStats } from './counters.ts';

/** What every framed lane needs from its transport. */
export interface FramedLaneOptions {
  /** Tasks sent ahead to each worker (they run one at a time there). */
  readonly prefetch: number;
  readonly onLog: LogHandler;
  /** Serves the blobs workers ask for (undefined: answer "missing"). */
  readonly blobServer: BlobSource | undefined;
  /** Counters to add to (what travelled). */
  readonly stats?: TransferStats;
}

/** A running task whose call was abandoned is given this long to finish before its worker is replaced. */
const ABANDON_GRACE_MS = 2000;

/** One worker speaking the protocol over a {@link Channel}. */
export abstract class FramedLane implements Lane {
  readonly id: string;
  readonly ready: Promise<unknown>;
  greeted = false;
  retiring = false;
  stopping = false;
  /** The first fatal error (a FATAL frame, a corrupt stream): the worker's end is reported with it. */
  protected fatal: WorkerError | undefined;
  /** Function hashes this worker was sent (so later tasks send the hash alone). */
  readonly #functions = new Set<string>();
  /** Task ids sent and not answered, in send order (the first is the one running), with their function hash. */
  readonly #inflight: number[] = [];
  readonly #fnKeys = new Map<number, string>();
  /** A running task whose call was abandoned: no new tasks until it finishes. */
  #abandoned: number | undefined;
  #blocked = false;
  #resolveReady!: () => void;
  #rejectReady!: (e: WorkerError) => void;
  #channel!: Channel;
  readonly #events: LaneEvents;
  readonly #o: FramedLaneOptions;

  constructor(id: string, o: FramedLaneOptions, events: LaneEvents) {
    this.id = id;
    this.#o = o;
    this.#events = events;
    this.ready = new Promise<void>((res, rej) => {
      this.#resolveReady = res;
      this.#rejectReady = rej;
    });
    this.ready.catch(() => {});
  }

  /** How the worker is named in messages ('worker p1 (pid 123)', 'thread t2'). */
  protected abstract get label(): string;
  /** Stops the worker now. */
  protected abstract terminate(): void;
  abstract setRef(ref: boolean): void;

  /** Starts talking over `channel` (the subclass calls this once its worker exists). */
  protected open(channel: Channel): void {
    this.#channel = channel;
    channel.send(FrameType.hello, [encodeHello({ protocol: PROTOCOL_VERSION, format: FORMAT_VERSION, info: { pid: process.pid, role: 'client' } })]);
  }

  /** Handles one frame from the worker. */
  protected onFrame(frame: ChannelFrame): void {
    if (!this.greeted) {
      if (frame.type === FrameType.fatal) return this.fail(decodeFatal(frame.body));
      if (frame.type !== FrameType.hello) return this.fail(new WorkerError('ERR_MP_PROTOCOL_GARBAGE', `${this.label} sent frame type ${frame.type} before its HELLO`, this.id));
      try {
        checkHello({ protocol: PROTOCOL_VERSION, format: FORMAT_VERSION, info: {} }, decodeHello(frame.body), this.label);
      } catch (err) {
        return this.fail(err as WorkerError);
      }
      this.greeted = true;
      this.#resolveReady();
      return;
    }
    switch (frame.type) {
      case FrameType.result:
        return this.#onResult(frame);
      case FrameType.log:
        return this.#o.onLog(this.id, frame.body[0] === 2 ? 2 : 1, text(frame.body.subarray(5)));
      case FrameType.blobRequest:
        return void this.#serveBlobs(readU32(frame.body, 0), frame.body.subarray(4));
      case FrameType.fatal:
        return this.fail(decodeFatal(frame.body));
      default:
        return this.fail(new WorkerError('ERR_MP_PROTOCOL_GARBAGE', `${this.label} sent unexpected frame type ${frame.type}`, this.id));
    }
  }

  /** The worker is gone: `error` says why (undefined: a requested, clean stop). */
  protected ended(error: WorkerError | undefined): void {
    this.#rejectReady(error ?? new WorkerError('ERR_MP_WORKER_EXITED', `${this.label} exited before its handshake`, this.id));
    // Tasks run one at a time, in send order: the first unanswered one was running, the others never started.
    const [running, ...waiting] = this.#inflight;
    this.#inflight.length = 0;
    this.#events.closed(this, error, running === undefined ? [] : [running], waiting);
  }

  /** Records a fatal error and stops the worker (its end is then reported with this error). */
  protected fail(err: WorkerError): void {
    if (this.fatal) return;
    this.fatal = err;
    this.kill();
  }

  load(): number {
    return this.#inflight.length;
  }

  accepting(): boolean {
    return this.greeted && !this.retiring && !this.#blocked && this.#abandoned === undefined && this.#inflight.length < this.#o.prefetch;
  }

  send(jobId: number, task: EncodedTask): void {
    // A task whose buffers move cannot be sent twice: it carries its function, so it is never asked to resend.
    const moves = (task.beside?.transfer.length ?? 0) > 0;
    const withFn = moves || !this.#functions.has(task.fnKey);
    const stats = this.#o.stats;
    if (withFn) {
      this.#functions.add(task.fnKey);
      if (stats) (stats.functionsSent++, (stats.functionBytes += task.fnBytes.length));
    }
    const body = taskBody(task, withFn);
    if (stats) (stats.argsBytes += task.argsBytes.length), (stats.bytesSent += 9 + body.length);
    this.#inflight.push(jobId);
    this.#fnKeys.set(jobId, task.fnKey);
    if (!this.#channel.send(FrameType.task, [idBody(jobId), body], task.beside)) {
      this.#blocked = true;
      void this.#channel.ready().then(() => {
        this.#blocked = false;
        this.#events.wake(this);
      });
    }
  }

  stop(jobId: number, mode: StopMode): void {
    const at = this.#inflight.indexOf(jobId);
    if (at < 0) return;
    // Queued on the worker: it drops it (answers `cancelled`, or the result if it already ran it).
    if (at > 0) return void this.#channel.send(FrameType.cancel, [idBody(jobId)]);
    if (mode === 'kill') return this.kill();
    // Running, and nobody wants its result (a map stopped early): let it finish, but not forever, and give the
    // worker no new tasks meanwhile.
    this.#abandoned = jobId;
    setTimeout(() => {
      if (this.#inflight[0] === jobId) this.kill();
    }, ABANDON_GRACE_MS).unref();
  }

  retire(): void {
    this.retiring = true;
    if (!this.stopping && this.#inflight.length === 0) this.shutdown();
  }

  shutdown(): void {
    this.stopping = true;
    this.retiring = true;
    this.#channel.send(FrameType.shutdown, []);
    this.#channel.end();
  }

  kill(): void {
    this.stopping = true;
    this.retiring = true;
    this.terminate();
  }

  #onResult(frame: ChannelFrame): void {
    const r = decodeResult(frame.body);
    const at = this.#inflight.indexOf(r.id);
    if (at >= 0) this.#inflight.splice(at, 1);
    const fnKey = this.#fnKeys.get(r.id);
    this.#fnKeys.delete(r.id);
    const wasAbandoned = this.#abandoned === r.id;
    if (wasAbandoned) this.#abandoned = undefined;
    if (r.status === ResultStatus.needFunction || r.status === ResultStatus.cancelled) {
      // Either way the worker did not keep the function (it only caches what it ran).
      if (fnKey !== undefined) this.#functions.delete(fnKey);
      this.#events.requeue(this, r.id);
    } else {
      const beside = frame.beside ? { buffers: frame.beside, transfer: [] } : undefined;
      this.#events.result(this, r.id, { status: r.status as ResultStatus, payload: r.payload, beside }, { versions: r.versions, rssMiB: r.rssMiB });
    }
    if (this.retiring && !this.stopping && this.#inflight.length === 0) this.shutdown();
    else if (wasAbandoned) this.#events.wake(this);
  }

  async #serveBlobs(reqId: number, body: Uint8Array): Promise<void> {
    let hashes: string[] = [];
    try {
      const parsed: unknown = JSON.parse(text(body));
      if (Array.isArray(parsed)) hashes = parsed.filter((h): h is string => typeof h === 'string');
    } catch {
      // answered as "all missing" below
    }
    let blobs = new Map<string, Uint8Array>();
    try {
      if (this.#o.blobServer) blobs = await this.#o.blobServer.get(hashes);
    } catch {
      // answered as "missing": the worker then reports which blob it could not get
    }
    const response = encodeBlobResponse(reqId, hashes.map((h) => [h, blobs.get(h)] as const));
    if (this.#o.stats) this.#o.stats.bytesSent += 5 + response.length;
    this.#channel.send(FrameType.blobResponse, [response]);
  }
}
