/**
 * How the two ends of the worker protocol reach each other: a byte stream (a pipe to a process, a command's
 * stdin/stdout) framed by protocol.ts, or a `MessagePort` (a worker thread), where each frame is one message and
 * buffers can travel beside it: transferred (moved, not copied) or shared (a SharedArrayBuffer). Frame types and
 * bodies are the same over both, so the worker loop and the lanes speak one protocol.
 */
import type { Writable } from 'node:stream';
import { WorkerError } from '../errors.ts';
import { FrameReader, FrameWriter, type FrameType } from './protocol.ts';

/** Buffers that travel beside a frame (threads only): `buffers` are the payload's out-of-band list, in order. */
export interface Beside {
  readonly buffers: readonly ArrayBufferLike[];
  /** The ones moved rather than cloned (they are detached on the sender). */
  readonly transfer: readonly ArrayBuffer[];
}

/** A frame as a channel delivers it. `body` may be a view into a receive buffer: copy it to keep it. */
export interface ChannelFrame {
  readonly type: number;
  readonly body: Uint8Array;
  /** Buffers that came beside the frame (threads). */
  readonly beside?: readonly ArrayBufferLike[];
}

export interface Channel {
  /** Whether buffers can travel beside frames (transferred or shared): true between threads. */
  readonly sharesMemory: boolean;
  /** Queues a frame; returns false when the peer is not keeping up (then await `ready()`). */
  send(type: FrameType, parts: readonly Uint8Array[], beside?: Beside): boolean;
  /** Resolves when the channel accepts more. */
  ready(): Promise<void>;
  /** Delivers queued frames now. */
  flush(): void;
  /** Flushes, then closes the sending side. */
  end(): void;
}

/** The receiving side's callbacks. */
export interface ChannelHandlers {
  frame(frame: ChannelFrame): void;
  /** Bytes before the preamble (stream channels that tolerate junk: a shell banner). */
  junk?(bytes: Uint8Array): void;
  /** The stream is corrupt. */
  error(err: WorkerError): void;
}

/** Below this size a buffer is cheaper to copy than to move between threads (and Node's pooled Buffers are 8 KiB). */
export const MOVE_MIN_BYTES = 65536;

/** A framed byte stream written to `output` (frames coming back are parsed by {@link streamReader}). */
export function streamChannel(output: Writable): Channel {
  const writer = new FrameWriter(output);
  return {
    sharesMemory: false,
    send: (type, parts) => writer.send(type, ...parts),
    ready: () => writer.ready(),
    flush: () => writer.flush(),
    end: () => writer.end(),
  };
}

/** Parses frames from a byte stream's chunks; returns the function to feed chunks to. */
export function streamReader(handlers: ChannelHandlers): (chunk: Uint8Array) => void {
  const reader = new FrameReader((f) => handlers.frame(f), handlers.junk);
  return (chunk) => {
    try {
      reader.push(chunk);
    } catch (err) {
      handlers.error(err instanceof WorkerError ? err : new WorkerError('ERR_MP_PROTOCOL_GARBAGE', String(err)));
    }
  };
}

/** What a port channel needs: a `MessagePort`, a `Worker`, or `parentPort`. */
export interface PortLike {
  postMessage(value: unknown, transfer?: readonly ArrayBuffer[]): void;
}

/** A port message: `[type, body, beside]`. */
type PortMessage = [number, Uint8Array, ArrayBufferLike[] | undefined];

/**
 * Frames as messages. A body is gathered into one buffer of its own, moved (not cloned) when large; buffers beside
 * it are cloned, or moved when listed in `transfer` (a SharedArrayBuffer is shared either way).
 */
export function portChannel(port: PortLike): Channel {
  let closed = false;
  return {
    sharesMemory: true,
    send(type, parts, beside) {
      if (closed) return true;
      let len = 0;
      for (const p of parts) len += p.length;
      const body = new Uint8Array(len);
      let at = 0;
      for (const p of parts) body.set(p, at), (at += p.length);
      // Moving a buffer costs more than copying a small one.
      const moved = beside?.transfer ?? [];
      const transfer = len >= MOVE_MIN_BYTES ? [body.buffer, ...moved] : moved;
      const msg: PortMessage = [type, body, beside && beside.buffers.length > 0 ? [...beside.buffers] : undefined];
      port.postMessage(msg, transfer);
      return true;
    },
    ready: () => Promise.resolve(),
    flush: () => {},
    end: () => {
      closed = true;
    },
  };
}

/** Parses one port message; `undefined` when it is not a frame. */
export function portFrame(msg: unknown): ChannelFrame | undefined {
  if (!Array.isArray(msg) || typeof msg[0] !== 'number' || !(msg[1] instanceof Uint8Array)) return undefined;
  const beside = msg[2];
  return { type: msg[0], body: msg[1], beside: Array.isArray(beside) ? (beside as ArrayBufferLike[]) : undefined };
}
