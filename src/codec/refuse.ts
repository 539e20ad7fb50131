/** Values that must not be pickled: their state is not data (weak collections, promises, live handles). */
import { ChildProcess } from 'node:child_process';
import { Socket as DgramSocket } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { Dir } from 'node:fs';
import { Session } from 'node:inspector';
import { Server, Socket } from 'node:net';
import { Interface } from 'node:readline';
import { Stream } from 'node:stream';
import { types } from 'node:util';
import { BroadcastChannel, MessagePort, Worker } from 'node:worker_threads';

interface Refusal {
  readonly code: string;
  readonly message: string;
}

const timeout = setTimeout(() => {}, 0);
clearTimeout(timeout);
const immediate = setImmediate(() => {});
clearImmediate(immediate);

/** Live handles, by the prototype they inherit from, with the name used in errors. */
const liveHandles: [object, string][] = [
  [Socket.prototype, 'socket'],
  [Server.prototype, 'server'],
  [Stream.prototype, 'stream'],
  [ChildProcess.prototype, 'child process'],
  [Worker.prototype, 'worker thread'],
  [MessagePort.prototype, 'message port'],
  [BroadcastChannel.prototype, 'broadcast channel'],
  [DgramSocket.prototype, 'UDP socket'],
  [Dir.prototype, 'directory handle'],
  [Interface.prototype, 'readline interface'],
  [Session.prototype, 'inspector session'],
  [ReadableStream.prototype, 'web stream'],
  [WritableStream.prototype, 'web stream'],
  [TransformStream.prototype, 'web stream'],
  [Object.getPrototypeOf(timeout) as object, 'timer'],
  [Object.getPrototypeOf(immediate) as object, 'immediate'],
];

/** Node-internal handle classes that are not exported: recognized by constructor name on an event emitter. */
const internalHandles = new Map([
  ['FileHandle', 'file handle'],
  ['FSWatcher', 'file watcher'],
  ['StatWatcher', 'file watcher'],
]);

function internalHandle(v: object): string | undefined {
  const proto = Object.getPrototypeOf(v) as object | null;
  // Descriptors, not property reads: no user getter runs while deciding.
  const ctor: unknown = proto === null ? undefined : Object.getOwnPropertyDescriptor(proto, 'constructor')?.value;
  const name: unknown = typeof ctor === 'function' ? Object.getOwnPropertyDescriptor(ctor, 'name')?.value : undefined;
  const what = typeof name === 'string' ? internalHandles.get(name) : undefined;
  // FileHandle mixes EventEmitter methods in rather than inheriting them.
  if (what === undefined || !(inherits(v, EventEmitter.prototype) || 'on' in v)) return undefined;
  return what;
}

function inherits(v: object, proto: object): boolean {
  return Object.prototype.isPrototypeOf.call(proto, v);
}

const live = (what: string): Refusal => ({
  code: 'ERR_MP_LIVE_HANDLE',
  message: `${/^[aeiou]/i.test(what) ? 'an' : 'a'} ${what} is a live handle bound to this process and cannot be pickled; pass what is needed to recreate it (a path, an address, options) and open it on the receiver`,
});
const unsupported = (what: string, advice: string): Refusal => ({
  code: 'ERR_MP_UNSUPPORTED_TYPE',
  message: `a ${what} cannot be pickled: ${advice}`,
});

/** Why `v` cannot be pickled, or `undefined` when it can. */
export function refusal(v: object): Refusal | undefined {
  if (types.isWeakMap(v)) return unsupported('WeakMap', 'its entries are not enumerable; use a Map');
  if (types.isWeakSet(v)) return unsupported('WeakSet', 'its entries are not enumerable; use a Set');
  if (v instanceof WeakRef) return unsupported('WeakRef', 'pickle the target instead');
  if (v instanceof FinalizationRegistry) return unsupported('FinalizationRegistry', 'it belongs to this process\'s garbage collector');
  if (types.isPromise(v)) return unsupported('Promise', 'await it and pickle the result');
  if (types.isGeneratorObject(v)) return unsupported('generator object', 'its suspended state cannot be read; pickle the generator function and its arguments');
  if (types.isExternal(v)) return unsupported('native external value', 'it wraps a C++ pointer');
  if (v === process) return live('process object');
  if (v === globalThis) return unsupported('global object', 'pickle the values you need from it');
  const handle = internalHandle(v);
  if (handle !== undefined) return live(handle);
  // Generator objects are recognized by their internal slot above: a generator function's `prototype` object,
  // which only inherits from %GeneratorPrototype%, is data.
  for (const [proto, what] of liveHandles) if (inherits(v, proto)) return live(what);
  return undefined;
}

let builtinClasses: Map<object, string> | undefined;

/**
 * The name of the built-in class (a global such as `TextEncoder`, `Intl.NumberFormat`, `Blob`, `EventTarget`)
 * whose prototype `proto` is, or `undefined`. Instances of built-in classes keep their state in internal slots or
 * private fields that reflection cannot read; the registry decides which ones can travel (Map, Date, URL, ...).
 */
export function hiddenStateClass(proto: object): string | undefined {
  if (!builtinClasses) {
    const found = new Map<object, string>();
    const scan = (holder: object, prefix: string): void => {
      for (const name of Object.getOwnPropertyNames(holder)) {
        const d = Object.getOwnPropertyDescriptor(holder, name);
        const ctor = d && 'value' in d ? (d.value as unknown) : undefined;
        if (typeof ctor !== 'function' || !/^[A-Z]/.test(name)) continue;
        const p = (ctor as { prototype?: unknown }).prototype;
        if (typeof p === 'object' && p !== null && p !== Object.prototype && p !== Function.prototype && p !== Array.prototype) {
          if (!found.has(p)) found.set(p, prefix + name);
        }
      }
    };
    scan(globalThis, '');
    scan(Intl, 'Intl.');
    builtinClasses = found;
  }
  return builtinClasses.get(proto);
}
