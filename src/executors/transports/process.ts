/**
 * The process transport: each lane is one worker process speaking the worker protocol (protocol.ts) over its
 * stdin/stdout, started from a command: `node dist/entry/worker.js` for the pool, any command running
 * `modulepickle worker --stdio` for the stdio executor (docker, ssh, kubectl). A lane performs the handshake,
 * sends tasks (the function's bytes only the first time a worker sees it), answers the worker's blob requests,
 * forwards its output, and reports how it ended.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { WorkerError } from '../../errors.ts';
import {
  FrameReader,
  FrameType,
  FrameWriter,
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
  type Frame,
} from '../protocol.ts';
import { FORMAT_VERSION, type BlobSource } from '../pickler.ts';
import { decodeFatal } from '../worker-loop.ts';
import { taskBody, type EncodedTask } from '../task.ts';
import type { Lane, LaneEvents, StopMode, Transport } from '../scheduler.ts';
import type { LogHandler } from '../logs.ts';
import type { TransferStats } from './counters.ts';

/** How to start one worker process. */
export interface SpawnSpec {
  readonly command: readonly string[];
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/** Options of {@link processTransport}. */
export interface ProcessTransportOptions {
  /** Executor name in messages. */
  readonly name: string;
  /** Lane id prefix ('p' for the pool, 's' for stdio, 'q' for a queue worker's local pool). */
  readonly prefix: string;
  readonly size: number;
  /** Tasks sent ahead to each worker (they run one at a time there). */
  readonly prefetch: number;
  readonly spawn: () => SpawnSpec;
  readonly onLog: LogHandler;
  /** Serves the blobs workers ask for (undefined: answer "missing"). */
  readonly blobServer: BlobSource | undefined;
  /** Counters to add to (what travelled). */
  readonly stats?: TransferStats;
}

/** A running task whose call was abandoned is given this long to finish before its worker is replaced. */
const ABANDON_GRACE_MS = 2000;

/** Lanes over worker processes. */
export function processTransport(o: ProcessTransportOptions): Transport {
  return {
    name: o.name,
    prefix: o.prefix,
    size: o.size,
    window: o.prefetch,
    open: (id, events) => new ProcessLane(id, o, events),
  };
}

/** One worker process and its framed channel. */
class ProcessLane implements Lane {
  readonly id: string;
  readonly child: ChildProcess;
  readonly ready: Promise<unknown>;
  greeted = false;
  retiring = false;
  stopping = false;
  /** Function hashes this worker was sent (so later tasks send the hash alone). */
  readonly #functions = new Set<string>();
  /** Task ids sent and not answered, in send order (the first is the one running), with their function hash. */
  readonly #inflight: number[] = [];
  readonly #fnKeys = new Map<number, string>();
  /** A running task whose call was abandoned: no new tasks until it finishes. */
  #abandoned: number | undefined;
  #blocked = false;
  #fatal: WorkerError | undefined;
  #stderrTail = '';
  readonly #writer: FrameWriter;
  readonly #events: LaneEvents;
  readonly #o: ProcessTransportOptions;
  readonly #label: string;

  constructor(id: string, o: ProcessTransportOptions, events: LaneEvents) {
    this.id = id;
    this.#o = o;
    this.#events = events;
    const spec = o.spawn();
    const [cmd, ...args] = spec.command;
    if (!cmd) throw new WorkerError('ERR_MP_BAD_OPTION', 'the worker command is empty', id);
    this.child = spawn(cmd, args, { cwd: spec.cwd, env: spec.env, stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
    this.#label = `worker ${id}${this.child.pid ? ` (pid ${this.child.pid})` : ''}`;
    this.#writer = new FrameWriter(this.child.stdin!);
    this.#writer.send(FrameType.hello, encodeHello({ protocol: PROTOCOL_VERSION, format: FORMAT_VERSION, info: { pid: process.pid, role: 'client' } }));

    let resolveReady!: () => void;
    let rejectReady!: (e: WorkerError) => void;
    this.ready = new Promise<void>((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    this.ready.catch(() => {});

    const onFrame = (frame: Frame): void => {
      if (!this.greeted) {
        if (frame.type === FrameType.fatal) return this.#fail(decodeFatal(frame.body));
        if (frame.type !== FrameType.hello) return this.#fail(new WorkerError('ERR_MP_PROTOCOL_GARBAGE', `${this.#label} sent frame type ${frame.type} before its HELLO`, id));
        try {
          checkHello({ protocol: PROTOCOL_VERSION, format: FORMAT_VERSION, info: {} }, decodeHello(frame.body), this.#label);
        } catch (err) {
          return this.#fail(err as WorkerError);
        }
        this.greeted = true;
        resolveReady();
        return;
      }
      switch (frame.type) {
        case FrameType.result:
          return this.#onResult(frame.body);
        case FrameType.log:
          return o.onLog(id, frame.body[0] === 2 ? 2 : 1, text(frame.body.subarray(5)));
        case FrameType.blobRequest:
          return void this.#serveBlobs(readU32(frame.body, 0), frame.body.subarray(4));
        case FrameType.fatal:
          return this.#fail(decodeFatal(frame.body));
        default:
          return this.#fail(new WorkerError('ERR_MP_PROTOCOL_GARBAGE', `${this.#label} sent unexpected frame type ${frame.type}`, id));
      }
    };
    const reader = new FrameReader(onFrame, (junk) => o.onLog(id, 1, text(junk)));
    this.child.stdout!.on('data', (chunk: Uint8Array) => {
      if (o.stats) o.stats.bytesReceived += chunk.length;
      try {
        reader.push(chunk);
      } catch (err) {
        this.#fail(err instanceof WorkerError ? err : new WorkerError('ERR_MP_PROTOCOL_GARBAGE', String(err), id));
      }
    });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (s: string) => {
      this.#stderrTail = (this.#stderrTail + s).slice(-8000);
      o.onLog(id, 2, s);
    });
    this.child.stdin!.on('error', () => {}); // EPIPE when the worker died: reported through 'close'
    this.child.on('error', (err) => {
      this.#fail(new WorkerError('ERR_MP_WORKER_START', `could not start ${this.#label} with '${spec.command.join(' ')}': ${err.message}`, id, { cause: err }));
    });
    this.child.on('close', (code, signal) => {
      const error = this.#fatal ?? (this.stopping && code === 0 ? undefined : this.#exitError(code, signal));
      rejectReady(error ?? new WorkerError('ERR_MP_WORKER_EXITED', `${this.#label} exited before its handshake`, id));
      // Tasks run one at a time, in send order: the first unanswered one was running, the others never started.
      const [running, ...waiting] = this.#inflight;
      this.#inflight.length = 0;
      events.closed(this, error, running === undefined ? [] : [running], waiting);
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  load(): number {
    return this.#inflight.length;
  }

  accepting(): boolean {
    return this.greeted && !this.retiring && !this.#blocked && this.#abandoned === undefined && this.#inflight.length < this.#o.prefetch;
  }

  send(jobId: number, task: EncodedTask): void {
    const withFn = !this.#functions.has(task.fnKey);
    const stats = this.#o.stats;
    if (withFn) {
      this.#functions.add(task.fnKey);
      if (stats) (stats.functionsSent++, (stats.functionBytes += task.fnBytes.length));
    }
    const body = taskBody(task, withFn);
    if (stats) (stats.argsBytes += task.argsBytes.length), (stats.bytesSent += 9 + body.length);
    this.#inflight.push(jobId);
    this.#fnKeys.set(jobId, task.fnKey);
    if (!this.#writer.send(FrameType.task, idBody(jobId), body)) {
      this.#blocked = true;
      void this.#writer.ready().then(() => {
        this.#blocked = false;
        this.#events.wake(this);
      });
    }
  }

  stop(jobId: number, mode: StopMode): void {
    const at = this.#inflight.indexOf(jobId);
    if (at < 0) return;
    // Queued on the worker: it drops it (answers `cancelled`, or the result if it already ran it).
    if (at > 0) return void this.#writer.send(FrameType.cancel, idBody(jobId));
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
    this.#writer.send(FrameType.shutdown);
    this.#writer.end();
  }

  kill(): void {
    this.stopping = true;
    this.retiring = true;
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  setRef(ref: boolean): void {
    const f = ref ? 'ref' : 'unref';
    this.child[f]();
    for (const s of [this.child.stdin, this.child.stdout, this.child.stderr]) {
      const sock = s as unknown as { ref?: () => void; unref?: () => void } | null;
      sock?.[f]?.();
    }
  }

  #onResult(body: Uint8Array): void {
    const r = decodeResult(body);
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
      this.#events.result(this, r.id, { status: r.status as ResultStatus, payload: r.payload }, { versions: r.versions, rssMiB: r.rssMiB });
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
    this.#writer.send(FrameType.blobResponse, response);
  }

  #fail(err: WorkerError): void {
    if (this.#fatal) return;
    this.#fatal = err;
    this.kill();
  }

  #exitError(code: number | null, signal: NodeJS.Signals | null): WorkerError {
    const how = signal ? `was killed by ${signal}${signal === 'SIGKILL' ? ' (out of memory, or killed by a timeout, an abort or another process)' : ''}` : `exited with code ${code}`;
    const fatal = /FATAL ERROR: [^\n]*/.exec(this.#stderrTail)?.[0];
    const oom = fatal && /out of memory/i.test(fatal) ? ' (JavaScript heap out of memory: raise --max-old-space-size with the execArgv option, or split the work)' : '';
    const last = this.#stderrTail.trim().split('\n').slice(-3).join(' | ');
    const tail = fatal ? `: ${fatal}${oom}` : last ? `; its last stderr: ${last}` : '';
    const err = new WorkerError(signal ? 'ERR_MP_WORKER_KILLED' : 'ERR_MP_WORKER_EXITED', `${this.#label} ${how}${tail}`, this.id);
    Object.defineProperty(err, 'exitCode', { value: code, enumerable: true });
    Object.defineProperty(err, 'signal', { value: signal, enumerable: true });
    return err;
  }
}
