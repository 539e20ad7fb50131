/**
 * The worker side of the protocol: reads frames from `input`, runs tasks one at a time, writes frames to `output`
 * (or, in a worker thread, exchanges them over its `port`; see channel.ts). Used by `modulepickle worker --stdio`,
 * by pool workers (`dist/entry/worker.js`) and by pool threads (`dist/entry/thread.js`); the same code each way.
 *
 * User code must never write into the protocol stream, so `process.stdout.write` and `process.stderr.write` (and with
 * them `console.*`) are redirected into LOG frames, tagged with the running task. Tasks run strictly one after
 * another: the client relies on this to know which task a crashed worker was running (the rest it requeues).
 * The worker exits when its input ends (the client went away), so no process outlives its parent.
 */
import type { Readable, Writable } from 'node:stream';
import { WorkerError } from '../errors.ts';
import { getHeapStatistics } from 'node:v8';
import { threadId } from 'node:worker_threads';
import { portChannel, portFrame, streamChannel, streamReader, type ChannelFrame, type PortLike } from './channel.ts';
import {
  FrameType,
  PROTOCOL_VERSION,
  ResultStatus,
  checkHello,
  decodeBlobResponse,
  decodeHello,
  encodeHello,
  idBody,
  logBody,
  readU32,
  resultHead,
  text,
  utf8,
  type Hello,
} from './protocol.ts';
import { FORMAT_VERSION, heldTrees, type BlobSource, type PickleOptions } from './pickler.ts';
import { FunctionCache, runTask } from './task.ts';

/** Options of {@link startWorker}. */
export interface WorkerLoopOptions {
  readonly input?: Readable;
  readonly output?: Writable;
  /** A worker thread's port to its client, instead of `input`/`output`: buffers can then travel beside frames. */
  readonly port?: WorkerPort;
  /** Cache folder for blobs and materialized trees (default: the ship layer's default). */
  readonly cacheDir?: string;
  /** Redirect `process.stdout`/`process.stderr` writes into LOG frames (default true). */
  readonly captureConsole?: boolean;
  /** Called instead of `process.exit` when the loop ends (tests, in-process workers). */
  readonly onExit?: (code: number) => void;
  /** Overrides the versions sent in HELLO (to test version mismatches). */
  readonly protocol?: number;
  readonly format?: number;
  readonly loadsOptions?: PickleOptions;
  readonly dumpsOptions?: PickleOptions;
}

/** What the worker loop needs of a thread's `parentPort`. */
export interface WorkerPort extends PortLike {
  on(event: 'message', listener: (msg: unknown) => void): unknown;
  on(event: 'close', listener: () => void): unknown;
}

interface Queued {
  readonly id: number;
  readonly body: Uint8Array;
  /** Buffers that came beside the task (a thread's transferred or shared arguments). */
  readonly beside: readonly ArrayBufferLike[] | undefined;
}

/** Runs the worker loop until the input ends or a SHUTDOWN frame arrives. */
export function startWorker(options: WorkerLoopOptions = {}): void {
  const exit = options.onExit ?? ((code: number) => process.exit(code));
  const port = options.port;
  const writer = port ? portChannel(port) : streamChannel(options.output ?? process.stdout);
  const ours: Hello = {
    protocol: options.protocol ?? PROTOCOL_VERSION,
    format: options.format ?? FORMAT_VERSION,
    info: { pid: process.pid, threadId, node: process.version, cwd: process.cwd(), platform: process.platform },
  };
  writer.send(FrameType.hello, [encodeHello(ours)]);

  const cache = new FunctionCache();
  const queue: Queued[] = [];
  const blobWaiters = new Map<number, (blobs: Map<string, Uint8Array | undefined>) => void>();
  let nextBlobReq = 1;
  let running = 0; // id of the running task, 0 when idle
  let greeted = false;
  let shuttingDown = false;
  let busy = false;

  // Blobs the worker's cache lacks come from the client, over the same channel.
  const fetchBlobs = (hashes: readonly string[]): Promise<Map<string, Uint8Array | undefined>> => {
    const reqId = nextBlobReq++;
    return new Promise((resolve) => {
      blobWaiters.set(reqId, resolve);
      writer.send(FrameType.blobRequest, [idBody(reqId, utf8(JSON.stringify(hashes)))]);
    });
  };
  const blobSource: BlobSource = {
    async missing(hashes) {
      const got = await fetchBlobs(hashes);
      return hashes.filter((h) => !got.get(h));
    },
    async get(hashes) {
      const out = new Map<string, Uint8Array>();
      if (hashes.length === 0) return out;
      for (const [h, b] of await fetchBlobs(hashes)) if (b) out.set(h, b);
      return out;
    },
  };

  if (options.captureConsole !== false) {
    const redirect = (stream: 1 | 2) =>
      function write(chunk: unknown, encoding?: unknown, cb?: unknown): boolean {
        const bytes = typeof chunk === 'string' ? Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8') : (chunk as Uint8Array);
        writer.send(FrameType.log, [logBody(stream, running, bytes)]);
        const done = typeof encoding === 'function' ? encoding : cb;
        if (typeof done === 'function') queueMicrotask(() => (done as () => void)());
        return true;
      };
    // The writer keeps its own reference to the real stdout stream; only the user-facing write methods change.
    if (port || (options.output ?? process.stdout) === process.stdout) process.stdout.write = redirect(1) as typeof process.stdout.write;
    process.stderr.write = redirect(2) as typeof process.stderr.write;
  }

  const fatal = (err: WorkerError): void => {
    writer.send(FrameType.fatal, [utf8(JSON.stringify({ code: err.code, message: err.message }))]);
    writer.flush();
    shuttingDown = true;
    setImmediate(() => exit(1));
  };

  const pump = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    while (queue.length > 0) {
      const task = queue.shift()!;
      running = task.id;
      const out = await runTask(task.body, {
        blobSource, cache, cacheDir: options.cacheDir, loadsOptions: options.loadsOptions, dumpsOptions: options.dumpsOptions,
        beside: task.beside, sharesMemory: writer.sharesMemory,
      });
      running = 0;
      const rss = sampleRss(port !== undefined);
      writer.send(FrameType.result, [resultHead(task.id, out.status, rss, heldTrees().length), out.payload], out.beside);
      await writer.ready();
    }
    busy = false;
    if (shuttingDown) {
      writer.flush();
      exit(0);
    }
  };

  const onFrame = (frame: ChannelFrame): void => {
    if (!greeted) {
      if (frame.type !== FrameType.hello) return fatal(new WorkerError('ERR_MP_PROTOCOL_GARBAGE', `expected HELLO first, got frame type ${frame.type}`));
      try {
        checkHello(ours, decodeHello(frame.body), 'the client');
      } catch (err) {
        return fatal(err as WorkerError);
      }
      greeted = true;
      return;
    }
    switch (frame.type) {
      case FrameType.task:
        queue.push({ id: readU32(frame.body, 0), body: frame.body.subarray(4), beside: frame.beside });
        void pump();
        return;
      case FrameType.cancel: {
        const id = readU32(frame.body, 0);
        const at = queue.findIndex((q) => q.id === id);
        if (at >= 0) {
          queue.splice(at, 1);
          writer.send(FrameType.result, [resultHead(id, ResultStatus.cancelled, 0, heldTrees().length)]);
        }
        return;
      }
      case FrameType.blobResponse: {
        const { reqId, blobs } = decodeBlobResponse(frame.body);
        blobWaiters.get(reqId)?.(blobs);
        blobWaiters.delete(reqId);
        return;
      }
      case FrameType.shutdown:
        shuttingDown = true;
        if (!busy) void pump();
        return;
      default:
        return fatal(new WorkerError('ERR_MP_PROTOCOL_GARBAGE', `unexpected frame type ${frame.type} from the client`));
    }
  };

  if (port) {
    port.on('message', (msg) => {
      const frame = portFrame(msg);
      if (frame) onFrame(frame);
      else fatal(new WorkerError('ERR_MP_PROTOCOL_GARBAGE', 'a message from the client is not a frame'));
    });
    port.on('close', () => exit(0));
    return;
  }
  const input = options.input ?? process.stdin;
  input.on('data', streamReader({ frame: onFrame, error: fatal }));
  // The client is gone (closed our stdin, exited, or was killed): nobody will read results, so stop now.
  input.on('end', () => {
    writer.flush();
    exit(0);
  });
  input.on('error', () => exit(0));
}

let rssAt = 0;
let rssMiB = 0;
// Reading the resident set size costs a /proc read: sample it at most every 50 ms. A thread reports its own heap
// (the process's resident set is every thread's), so `maxMemoryMiB` recycles the thread that grew.
function sampleRss(thread: boolean): number {
  const now = performance.now();
  if (now - rssAt > 50) {
    rssAt = now;
    rssMiB = Math.round((thread ? getHeapStatistics().used_heap_size : process.memoryUsage.rss()) / 1048576);
  }
  return rssMiB;
}

/** Parses a FATAL frame body sent by either side. */
export function decodeFatal(body: Uint8Array): WorkerError {
  try {
    const v = JSON.parse(text(body)) as { code?: unknown; message?: unknown };
    return new WorkerError(typeof v.code === 'string' ? v.code : 'ERR_MP_WORKER_FATAL', typeof v.message === 'string' ? v.message : 'worker failed');
  } catch {
    return new WorkerError('ERR_MP_WORKER_FATAL', text(body));
  }
}
