/**
 * The client side of one worker process: spawns it, performs the handshake, sends tasks, receives results, answers
 * its blob requests, forwards its logs, and reports how it ended. Scheduling lives in `executor.ts`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { WorkerError } from '../errors.ts';
import {
  FrameReader,
  FrameType,
  FrameWriter,
  PROTOCOL_VERSION,
  checkHello,
  decodeHello,
  decodeResult,
  encodeBlobResponse,
  encodeHello,
  idBody,
  readU32,
  text,
  type Frame,
  type Hello,
  type ResultFrame,
} from './protocol.ts';
import { FORMAT_VERSION, type BlobSource } from './pickler.ts';
import { decodeFatal } from './worker-loop.ts';

/** Where a worker's output goes: `stream` 1 is stdout, 2 is stderr. */
export type LogHandler = (worker: string, stream: 1 | 2, text: string) => void;

/** How to start one worker process. */
export interface SpawnSpec {
  readonly command: readonly string[];
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/** Events a connection reports to its executor. */
export interface ConnectionEvents {
  onResult(conn: WorkerConnection, result: ResultFrame): void;
  /** The process ended (after its pipes closed). `error` explains why when it was not asked to stop. */
  onClose(conn: WorkerConnection, error: WorkerError | undefined): void;
  onLog: LogHandler;
  /** Bytes moved over the channel (for "what travelled" reports). */
  onBytes?(sent: number, received: number): void;
  /** Serves blobs the worker asks for (undefined: answer "missing"). */
  readonly blobServer: BlobSource | undefined;
}

/** One worker process and its framed channel. */
export class WorkerConnection {
  readonly id: string;
  readonly child: ChildProcess;
  readonly ready: Promise<Hello>;
  /** Function hashes this worker was sent (so later calls send the hash alone). */
  readonly functions = new Set<string>();
  /** Task ids sent and not answered yet, in send order (the first one is the one running). */
  readonly inflight: number[] = [];
  /** No new tasks: being recycled or shut down. */
  retiring = false;
  greeted = false;
  stopping = false;
  #fatal: WorkerError | undefined;
  #stderrTail = '';
  readonly #writer: FrameWriter;
  readonly #events: ConnectionEvents;
  readonly #label: string;

  constructor(id: string, spec: SpawnSpec, events: ConnectionEvents) {
    this.id = id;
    this.#events = events;
    const [cmd, ...args] = spec.command;
    if (!cmd) throw new WorkerError('ERR_MP_BAD_OPTION', 'the worker command is empty', id);
    this.child = spawn(cmd, args, { cwd: spec.cwd, env: spec.env, stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
    this.#label = `worker ${id}${this.child.pid ? ` (pid ${this.child.pid})` : ''}`;
    this.#writer = new FrameWriter(this.child.stdin!);
    this.#writer.send(FrameType.hello, encodeHello({ protocol: PROTOCOL_VERSION, format: FORMAT_VERSION, info: { pid: process.pid, role: 'client' } }));

    let resolveReady!: (h: Hello) => void;
    let rejectReady!: (e: WorkerError) => void;
    this.ready = new Promise<Hello>((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    this.ready.catch(() => {});

    const onFrame = (frame: Frame): void => {
      if (!this.greeted) {
        if (frame.type === FrameType.fatal) return this.#fail(decodeFatal(frame.body));
        if (frame.type !== FrameType.hello) return this.#fail(new WorkerError('ERR_MP_PROTOCOL_GARBAGE', `${this.#label} sent frame type ${frame.type} before its HELLO`, id));
        const hello = decodeHello(frame.body);
        try {
          checkHello({ protocol: PROTOCOL_VERSION, format: FORMAT_VERSION, info: {} }, hello, this.#label);
        } catch (err) {
          return this.#fail(err as WorkerError);
        }
        this.greeted = true;
        resolveReady(hello);
        return;
      }
      switch (frame.type) {
        case FrameType.result:
          return events.onResult(this, decodeResult(frame.body));
        case FrameType.log:
          return events.onLog(id, frame.body[0] === 2 ? 2 : 1, text(frame.body.subarray(5)));
        case FrameType.blobRequest:
          return void this.#serveBlobs(readU32(frame.body, 0), frame.body.subarray(4));
        case FrameType.fatal:
          return this.#fail(decodeFatal(frame.body));
        default:
          return this.#fail(new WorkerError('ERR_MP_PROTOCOL_GARBAGE', `${this.#label} sent unexpected frame type ${frame.type}`, id));
      }
    };
    const reader = new FrameReader(onFrame, (junk) => events.onLog(id, 1, text(junk)));
    this.child.stdout!.on('data', (chunk: Uint8Array) => {
      events.onBytes?.(0, chunk.length);
      try {
        reader.push(chunk);
      } catch (err) {
        this.#fail(err instanceof WorkerError ? err : new WorkerError('ERR_MP_PROTOCOL_GARBAGE', String(err), id));
      }
    });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (s: string) => {
      this.#stderrTail = (this.#stderrTail + s).slice(-8000);
      events.onLog(id, 2, s);
    });
    this.child.stdin!.on('error', () => {}); // EPIPE when the worker died: reported through 'close'
    this.child.on('error', (err) => {
      this.#fail(new WorkerError('ERR_MP_WORKER_START', `could not start ${this.#label} with '${spec.command.join(' ')}': ${err.message}`, id, { cause: err }));
    });
    this.child.on('close', (code, signal) => {
      const error = this.#fatal ?? (this.stopping && code === 0 ? undefined : this.#exitError(code, signal));
      rejectReady(error ?? new WorkerError('ERR_MP_WORKER_EXITED', `${this.#label} exited before its handshake`, id));
      events.onClose(this, error);
    });
  }

  /** The process's pid (undefined if it could not be started). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Sends a TASK frame. Returns false when the pipe is full (await `drained()`). */
  sendTask(id: number, body: Uint8Array): boolean {
    this.inflight.push(id);
    this.#events.onBytes?.(9 + body.length, 0);
    return this.#writer.send(FrameType.task, idBody(id), body);
  }

  /** Resolves when the pipe to the worker accepts more data. */
  drained(): Promise<void> {
    return this.#writer.ready();
  }

  /** Asks the worker to drop a queued task (it answers `cancelled`, or the result if it already ran it). */
  cancel(id: number): void {
    this.#writer.send(FrameType.cancel, idBody(id));
  }

  /** Graceful stop: the worker finishes its queue, then exits. */
  shutdown(): void {
    this.stopping = true;
    this.retiring = true;
    this.#writer.send(FrameType.shutdown);
    this.#writer.end();
  }

  /** Immediate stop. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.stopping = true;
    this.retiring = true;
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }

  /** Bytes written to the worker so far. */
  get bytesSent(): number {
    return this.#writer.bytesWritten;
  }

  /** Lets the parent exit while this worker is idle (`false`), or keeps it alive (`true`). */
  setRef(ref: boolean): void {
    const f = ref ? 'ref' : 'unref';
    this.child[f]();
    for (const s of [this.child.stdin, this.child.stdout, this.child.stderr]) {
      const sock = s as unknown as { ref?: () => void; unref?: () => void } | null;
      sock?.[f]?.();
    }
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
      if (this.#events.blobServer) blobs = await this.#events.blobServer.get(hashes);
    } catch {
      // answered as "missing": the worker then reports which blob it could not get
    }
    const response = encodeBlobResponse(reqId, hashes.map((h) => [h, blobs.get(h)] as const));
    this.#events.onBytes?.(5 + response.length, 0);
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
