/**
 * The process transport: each lane is one worker process speaking the worker protocol (protocol.ts) over its
 * stdin/stdout, started from a command: `node dist/entry/worker.js` for the pool, any command running
 * `modulepickle worker --stdio` for the stdio executor (docker, ssh, kubectl). The protocol's client end is
 * framed-lane.ts; this file starts the process, carries frames over its pipes and says how it ended.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { WorkerError } from '../../errors.ts';
import { streamChannel, streamReader } from '../channel.ts';
import { text } from '../protocol.ts';
import type { LaneEvents, Transport } from '../scheduler.ts';
import { FramedLane, type FramedLaneOptions } from './framed-lane.ts';

/** How to start one worker process. */
export interface SpawnSpec {
  readonly command: readonly string[];
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/** Options of {@link processTransport}. */
export interface ProcessTransportOptions extends FramedLaneOptions {
  /** Executor name in messages. */
  readonly name: string;
  /** Lane id prefix ('p' for the pool, 's' for stdio, 'q' for a queue worker's local pool). */
  readonly prefix: string;
  readonly size: number;
  readonly spawn: () => SpawnSpec;
}

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

/** One worker process; frames travel over its stdin/stdout. */
class ProcessLane extends FramedLane {
  readonly child: ChildProcess;
  #stderrTail = '';
  readonly #label: string;

  constructor(id: string, o: ProcessTransportOptions, events: LaneEvents) {
    super(id, o, events);
    const spec = o.spawn();
    const [cmd, ...args] = spec.command;
    if (!cmd) throw new WorkerError('ERR_MP_BAD_OPTION', 'the worker command is empty', id);
    this.child = spawn(cmd, args, { cwd: spec.cwd, env: spec.env, stdio: ['pipe', 'pipe', 'pipe'], windowsHide: true });
    this.#label = `worker ${id}${this.child.pid ? ` (pid ${this.child.pid})` : ''}`;
    this.open(streamChannel(this.child.stdin!));
    const push = streamReader({
      frame: (f) => this.onFrame(f),
      junk: (junk) => o.onLog(id, 1, text(junk)),
      error: (err) => this.fail(new WorkerError(err.code, err.message, id)),
    });
    this.child.stdout!.on('data', (chunk: Uint8Array) => {
      if (o.stats) o.stats.bytesReceived += chunk.length;
      push(chunk);
    });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (s: string) => {
      this.#stderrTail = (this.#stderrTail + s).slice(-8000);
      o.onLog(id, 2, s);
    });
    this.child.stdin!.on('error', () => {}); // EPIPE when the worker died: reported through 'close'
    this.child.on('error', (err) => {
      this.fail(new WorkerError('ERR_MP_WORKER_START', `could not start ${this.#label} with '${spec.command.join(' ')}': ${err.message}`, id, { cause: err }));
    });
    this.child.on('close', (code, signal) => this.ended(this.fatal ?? (this.stopping && code === 0 ? undefined : this.#exitError(code, signal))));
  }

  protected get label(): string {
    return this.#label;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  protected terminate(): void {
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
