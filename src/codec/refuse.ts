/** Values that must not be pickled: their state is not data (weak collections, promises, live handles). */
import { ChildProcess } from 'node:child_process';
import { Server, Socket } from 'node:net';
import { Stream } from 'node:stream';
import { types } from 'node:util';
import { MessagePort, Worker } from 'node:worker_threads';

interface Refusal {
  readonly code: string;
  readonly message: string;
}

const timeout = setTimeout(() => {}, 0);
clearTimeout(timeout);
const immediate = setImmediate(() => {});
clearImmediate(immediate);
const generatorProto = Object.getPrototypeOf(function* () {}).prototype as object;
const asyncGeneratorProto = Object.getPrototypeOf(async function* () {}).prototype as object;

/** Live handles, by the prototype they inherit from, with the name used in errors. */
const liveHandles: [object, string][] = [
  [Socket.prototype, 'socket'],
  [Server.prototype, 'server'],
  [Stream.prototype, 'stream'],
  [ChildProcess.prototype, 'child process'],
  [Worker.prototype, 'worker thread'],
  [MessagePort.prototype, 'message port'],
  [Object.getPrototypeOf(timeout) as object, 'timer'],
  [Object.getPrototypeOf(immediate) as object, 'immediate'],
  [generatorProto, 'generator object'],
  [asyncGeneratorProto, 'async generator object'],
];

function inherits(v: object, proto: object): boolean {
  return Object.prototype.isPrototypeOf.call(proto, v);
}

const live = (what: string): Refusal => ({
  code: 'ERR_MP_LIVE_HANDLE',
  message: `a ${what} is a live handle bound to this process and cannot be pickled; pass what is needed to recreate it (a path, an address, options) and open it on the receiver`,
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
  for (const [proto, what] of liveHandles) {
    if (inherits(v, proto)) {
      return what.includes('generator') ? unsupported(what, 'its suspended state cannot be read') : live(what);
    }
  }
  return undefined;
}
