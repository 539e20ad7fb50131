/**
 * The transport-independent task core, shared by the client and the worker (and by the queue executor).
 *
 * Client side:
 *   const shipping = createShipping(userDumpsOptions)              // shipping.ts: ship.blobs 'none' + blob server
 *   const task = await encodeTask(fn, args, { dumpsOptions: shipping.dumpsOptions })
 *   send(taskBody(task, !receiverHas(task.fnKey)))                 // hash alone when the receiver has the function
 *   ... later: await decodeOutcome(status, payload, { mapStack: shipping.mapStack }) -> value, or throws RemoteError
 *   (`encodeFunction(fn)` pickles a function once for many tasks: `encodeTask` accepts its result as `fn`.)
 * Worker side:
 *   const { status, payload } = await runTask(body, { blobSource, cacheDir })   // never throws
 *   status needFunction: the body had the hash alone and this worker lacks it; resend with the function.
 *
 * Task body: `u8 kind | 32-byte sha256 of the function payload | u32 fnLen | fn payload (fnLen bytes) | args payload`.
 * `fnLen` is 0 when the client knows the worker already has that function; a worker that no longer has it answers
 * `needFunction` and the client resends with the bytes. Each worker keeps decoded functions by content hash
 * ({@link FunctionCache}), so repeated calls of an unchanged closure skip decoding (its captured state persists on
 * that worker between such calls). Kind `map` applies the function to every element of the args payload.
 */
import { createHash } from 'node:crypto';
import { ModulePickleError, RemoteError } from '../errors.ts';
import { ResultStatus, concat, readU32, writeU32 } from './protocol.ts';
import { dumps, encodingKey, instantiate, loads, type BlobSource, type PickleOptions } from './pickler.ts';
import { templateCall } from './templates.ts';
import { payloadSectionCount, walkPayload } from './payload-walk.ts';
import { MOVE_MIN_BYTES, type Beside } from './channel.ts';

/**
 * Task kind byte. `template`: the function is a call template (templates.ts) and the args region starts with the
 * call's captures: `u32 length | captures payload (data only) | args payload`.
 */
export const TaskKind = { call: 0, map: 1, template: 2 } as const;
export type TaskKind = (typeof TaskKind)[keyof typeof TaskKind];

/** A pickled task, ready to be framed for any worker. */
export interface EncodedTask extends EncodedFunction {
  readonly kind: TaskKind;
  readonly argsBytes: Uint8Array;
  /** Buffers the arguments' payload left out (a thread's shared or transferred memory), in its out-of-band order. */
  readonly beside?: Beside;
}

/** Which buffers to move to the thread instead of copying: `true` every large one, or these (or their views' buffers). */
export type TransferOption = boolean | readonly (ArrayBufferLike | ArrayBufferView)[];


// Values marked by `transfer()`. Kept on the global object so that every copy of this module in a thread (the
// package, a shipped copy) shares one mark list.
const marksKey = Symbol.for('modulepickle.transfer');
const marks: WeakMap<object, TransferOption> = ((globalThis as Record<symbol, unknown>)[marksKey] as WeakMap<object, TransferOption> | undefined) ??
  ((globalThis as Record<symbol, unknown>)[marksKey] = new WeakMap<object, TransferOption>()) as WeakMap<object, TransferOption>;

/**
 * Marks a value whose binary data should move rather than be copied between threads: as an argument of a thread
 * pool call, or as the return value of a function running in one. `buffers` picks which (default: every
 * ArrayBuffer of 64 KiB or more the value reaches). Moved buffers are detached on the sending side. Returns
 * `value`. Executors that cross a process boundary copy regardless.
 */
export function transfer<T>(value: T, buffers?: readonly (ArrayBufferLike | ArrayBufferView)[]): T {
  if ((typeof value === 'object' && value !== null) || typeof value === 'function') marks.set(value as object, buffers ?? true);
  return value;
}

/** The transfer option of a value marked with {@link transfer}. */
export function transferMark(value: unknown): TransferOption | undefined {
  return (typeof value === 'object' && value !== null) || typeof value === 'function' ? marks.get(value as object) : undefined;
}

/**
 * The buffers the marked values among `values` move: a mark's own list, or for a bare mark the ArrayBuffers of
 * 64 KiB or more that value reaches through own data properties, elements and Map and Set entries (no getter
 * runs). Undefined when nothing is marked. Buffers of unmarked values are copied.
 */
function markedBuffers(values: readonly unknown[]): ArrayBufferLike[] | undefined {
  let out: Set<ArrayBufferLike> | undefined;
  for (const v of values) {
    const mark = transferMark(v);
    if (mark === undefined || mark === false) continue;
    out ??= new Set();
    if (mark !== true) {
      for (const b of mark) out.add(ArrayBuffer.isView(b) ? b.buffer : b);
      continue;
    }
    const seen = new Set<object>();
    const stack: unknown[] = [v];
    while (stack.length > 0) {
      const x = stack.pop();
      if ((typeof x !== 'object' && typeof x !== 'function') || x === null || seen.has(x)) continue;
      seen.add(x);
      if (ArrayBuffer.isView(x) || x instanceof ArrayBuffer) {
        const b = ArrayBuffer.isView(x) ? x.buffer : x;
        if (b.byteLength >= MOVE_MIN_BYTES) out.add(b);
        continue;
      }
      if (x instanceof Map) for (const [k, e] of x) stack.push(k, e);
      else if (x instanceof Set) for (const e of x) stack.push(e);
      for (const d of Object.values(Object.getOwnPropertyDescriptors(x))) if ('value' in d) stack.push(d.value);
    }
  }
  return out ? [...out] : undefined;
}

/**
 * A collector of the buffers a payload leaves out for a thread: every SharedArrayBuffer (so it arrives shared), and
 * the ArrayBuffers `transfer` selects (moved). `claim` is the codec's `outOfBand` hook.
 */
export function besideCollector(transfer: TransferOption | undefined): Beside & { claim(b: ArrayBufferLike): number | undefined } {
  const buffers: ArrayBufferLike[] = [];
  const moved: ArrayBuffer[] = [];
  let listed: Set<ArrayBufferLike> | undefined;
  if (Array.isArray(transfer)) listed = new Set(transfer.map((b: ArrayBufferLike | ArrayBufferView) => (ArrayBuffer.isView(b) ? b.buffer : b)));
  return {
    buffers,
    transfer: moved,
    claim(b) {
      if (b instanceof SharedArrayBuffer) return buffers.push(b) - 1;
      if (listed ? !listed.has(b) : transfer !== true || b.byteLength < MOVE_MIN_BYTES) return undefined;
      moved.push(b as ArrayBuffer);
      return buffers.push(b) - 1;
    },
  };
}

/** A pickled function and its content hash (encode once, send to many workers / many chunks). */
export interface EncodedFunction {
  /** sha256 of `fnBytes`, hex. */
  readonly fnKey: string;
  readonly fnHash: Uint8Array;
  readonly fnBytes: Uint8Array;
}

// Self-contained functions (by value, nothing captured, no module or file referenced) pickle to the same bytes
// every time: their payload is kept per function object, so `run(fn)` does not re-pickle them on every call.
const selfContained = new WeakMap<object, EncodedFunction>();

// A closure made per call (`run(() => 1)`) is a new object each time: its payload is kept by its encoding key
// (its location, when that settles the bytes; see encodingKey), per dumps options, for payloads that reference no
// module or file. The bytes, so the hash, are the same, and a worker that has the function gets the hash alone.
const byEncodingKey = new WeakMap<object, Map<string, EncodedFunction>>();
const encodingKeyLimit = 1024;
const noOptions: PickleOptions = {};

function keyOf(fn: Function): string | undefined {
  try {
    return encodingKey(fn);
  } catch {
    return undefined; // dumps reports what is wrong with the function
  }
}

/** Pickles a function. @throws ModulePickleError ERR_MP_NOT_A_FUNCTION, EncodeError from the codec */
export async function encodeFunction(fn: unknown, dumpsOptions?: PickleOptions, encodingKey?: string): Promise<EncodedFunction> {
  if (typeof fn !== 'function') {
    throw new ModulePickleError('ERR_MP_NOT_A_FUNCTION', `run/map/wrap expect a function, got ${fn === null ? 'null' : typeof fn}`);
  }
  const cached = selfContained.get(fn);
  if (cached && sameOwnKeys(fn)) return cached;
  const key = encodingKey ?? keyOf(fn);
  const keyed = key === undefined ? undefined : byEncodingKey.get(dumpsOptions ?? noOptions);
  const hit = key === undefined ? undefined : keyed?.get(key);
  if (hit) return hit;
  const fnBytes = await dumps(fn, dumpsOptions);
  const fnHash = createHash('sha256').update(fnBytes).digest();
  const encoded = { fnKey: fnHash.toString('hex'), fnHash, fnBytes };
  // A payload with sections (modules, shipped files) is kept by neither cache: no need to walk its body.
  const noSections = hasNoSections(fnBytes);
  if (noSections && isSelfContained(fnBytes) && sameOwnKeys(fn)) selfContained.set(fn, encoded);
  if (key !== undefined && noSections) {
    let map = keyed;
    if (!map) byEncodingKey.set(dumpsOptions ?? noOptions, (map = new Map()));
    if (map.size >= encodingKeyLimit) map.clear();
    map.set(key, encoded);
  }
  return encoded;
}

function hasNoSections(bytes: Uint8Array): boolean {
  try {
    return payloadSectionCount(bytes) === 0;
  } catch {
    return false;
  }
}

function cachedFunction(fn: unknown): EncodedFunction | undefined {
  if (typeof fn !== 'function') return undefined;
  const cached = selfContained.get(fn);
  return cached && sameOwnKeys(fn) ? cached : undefined;
}

function sameOwnKeys(fn: object): boolean {
  return Reflect.ownKeys(fn).every((k) => k === 'length' || k === 'name' || k === 'prototype');
}

function isSelfContained(bytes: Uint8Array): boolean {
  try {
    const w = walkPayload(bytes);
    if (w.sections.length > 0 || w.reduced.length !== 1) return false;
    const args = w.reduced[0]!.args as Record<string, unknown>;
    const state = (w.reduced[0]!.state ?? {}) as { captures?: Record<string, unknown> };
    const eager = args['eager'] as Record<string, unknown> | undefined;
    return args['t'] === 'value' && !('thisArg' in args) && Object.keys(state.captures ?? {}).length === 0 && Object.keys(eager ?? {}).length === 0;
  } catch {
    return false;
  }
}

/**
 * Pickles a call (or a map chunk: `args` are the items). `fn` may be pre-encoded with {@link encodeFunction}.
 * `beside` (thread transports): shared memory, and the buffers `transfer` selects, travel beside the payload.
 */
export async function encodeTask(fn: unknown, args: readonly unknown[], options: { kind?: TaskKind; dumpsOptions?: PickleOptions; beside?: { transfer?: TransferOption } } = {}): Promise<EncodedTask> {
  let kind = options.kind ?? TaskKind.call;
  let f = isEncoded(fn) ? fn : cachedFunction(fn);
  let captures: Uint8Array | undefined;
  if (!f && typeof fn === 'function') {
    // A closure whose location settles its bytes is kept whole (encodeFunction); a call's other closures split
    // into a template and their captures (templates.ts), and the rest is pickled in full.
    const key = keyOf(fn);
    const split = key === undefined && kind === TaskKind.call ? await templateCall(fn, options.dumpsOptions ?? noOptions) : undefined;
    f = split?.fn ?? (await encodeFunction(fn, options.dumpsOptions, key));
    captures = split?.captures;
  }
  f ??= await encodeFunction(fn, options.dumpsOptions);
  if (captures) kind = TaskKind.template;
  const withCaptures = (argsBytes: Uint8Array): Uint8Array => (captures ? concat(u32(captures.length), captures, argsBytes) : argsBytes);
  if (!options.beside) return { fnKey: f.fnKey, fnHash: f.fnHash, fnBytes: f.fnBytes, kind, argsBytes: withCaptures(await dumps(args, options.dumpsOptions)) };
  // The call's `transfer` option, else what `transfer()` marked among the arguments (only those move).
  const choice = options.beside.transfer ?? (kind !== TaskKind.map ? markedBuffers(args) : undefined);
  const beside = besideCollector(choice);
  const argsBytes = withCaptures(await dumps(args, { ...options.dumpsOptions, outOfBand: beside.claim }));
  return { fnKey: f.fnKey, fnHash: f.fnHash, fnBytes: f.fnBytes, kind, argsBytes, beside: beside.buffers.length > 0 ? beside : undefined };
}

/** The arguments' payload of a task (a template task's args region starts with its captures, which are data only). */
export function argsPayload(task: Pick<EncodedTask, 'kind' | 'argsBytes'>): Uint8Array {
  if (task.kind !== TaskKind.template) return task.argsBytes;
  return task.argsBytes.subarray(4 + readU32(task.argsBytes, 0));
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  writeU32(b, 0, n);
  return b;
}

function isEncoded(v: unknown): v is EncodedFunction {
  return typeof v === 'object' && v !== null && 'fnBytes' in v && 'fnHash' in v;
}

/** Frames a task body; `withFunction` false sends the function hash alone. */
export function taskBody(task: EncodedTask, withFunction: boolean): Uint8Array {
  const fn = withFunction ? task.fnBytes : new Uint8Array(0);
  const head = new Uint8Array(1 + 32 + 4);
  head[0] = task.kind;
  head.set(task.fnHash, 1);
  writeU32(head, 33, fn.length);
  return concat(head, fn, task.argsBytes);
}

/** Decoded functions by content hash, least recently used evicted first. */
export class FunctionCache {
  readonly #map = new Map<string, (...args: unknown[]) => unknown>();
  readonly #max: number;
  /** Functions decoded so far (cache misses). */
  decodes = 0;
  constructor(max = 256) {
    this.#max = max;
  }
  get(key: string): ((...args: unknown[]) => unknown) | undefined {
    const fn = this.#map.get(key);
    if (fn) {
      this.#map.delete(key);
      this.#map.set(key, fn);
    }
    return fn;
  }
  set(key: string, fn: (...args: unknown[]) => unknown): void {
    this.#map.set(key, fn);
    this.decodes++;
    if (this.#map.size > this.#max) this.#map.delete(this.#map.keys().next().value!);
  }
}

/** What the worker needs to run tasks. */
export interface RunContext {
  /** Fetches blobs the payload names but does not carry (over the channel, from Redis, ...). */
  readonly blobSource?: BlobSource;
  /** Where materialized trees and blobs are cached on this machine. */
  readonly cacheDir?: string;
  /** Extra options for `loads` / for `dumps` of the result. */
  readonly loadsOptions?: PickleOptions;
  readonly dumpsOptions?: PickleOptions;
  readonly cache?: FunctionCache;
  /** Buffers that came beside the task (the arguments' out-of-band list). */
  readonly beside?: readonly ArrayBufferLike[] | undefined;
  /** The result may leave buffers beside its payload (a thread): shared memory, and what `transfer()` marked. */
  readonly sharesMemory?: boolean;
}

/** A finished task: RESULT status and pickled value (or pickled {@link ErrorInfo}). */
export interface TaskOutcome {
  readonly status: ResultStatus;
  readonly payload: Uint8Array;
  /** Buffers the payload left out (threads), in its out-of-band order. */
  readonly beside?: Beside | undefined;
}

const defaultCache = new FunctionCache();

/** Runs one task body on the worker. Never throws: failures become an `error` outcome. */
export async function runTask(body: Uint8Array, ctx: RunContext = {}): Promise<TaskOutcome> {
  const cache = ctx.cache ?? defaultCache;
  let index: number | undefined;
  try {
    if (body.length < 37) throw new ModulePickleError('ERR_MP_PROTOCOL_GARBAGE', `task body too short (${body.length} bytes)`);
    const kind = body[0];
    const key = Buffer.from(body.buffer, body.byteOffset + 1, 32).toString('hex');
    const fnLen = readU32(body, 33);
    if (37 + fnLen > body.length) throw new ModulePickleError('ERR_MP_PROTOCOL_GARBAGE', 'task body truncated');
    const loadsOptions: PickleOptions = { ...ctx.loadsOptions };
    if (ctx.blobSource) loadsOptions['blobSource'] = ctx.blobSource;
    if (ctx.cacheDir) loadsOptions['cacheDir'] = ctx.cacheDir;
    let fn = cache.get(key);
    if (!fn) {
      if (fnLen === 0) return { status: ResultStatus.needFunction, payload: new Uint8Array(0) };
      const decoded = await loads(body.subarray(37, 37 + fnLen), loadsOptions);
      if (typeof decoded !== 'function') throw new ModulePickleError('ERR_MP_NOT_A_FUNCTION', `the task's function decoded to ${typeof decoded}`);
      fn = decoded as (...args: unknown[]) => unknown;
      cache.set(key, fn);
    }
    let argsAt = 37 + fnLen;
    if (kind === TaskKind.template) {
      // The call's closure, made from the template with this call's captures (data only: no code may ride in them).
      if (argsAt + 4 > body.length) throw new ModulePickleError('ERR_MP_PROTOCOL_GARBAGE', 'task body truncated');
      const capLen = readU32(body, argsAt);
      if (argsAt + 4 + capLen > body.length) throw new ModulePickleError('ERR_MP_PROTOCOL_GARBAGE', 'task body truncated');
      const captures = await loads(body.subarray(argsAt + 4, argsAt + 4 + capLen), { ...loadsOptions, code: false });
      fn = instantiate(fn, captures) as (...args: unknown[]) => unknown;
      argsAt += 4 + capLen;
    } else if (kind !== TaskKind.call && kind !== TaskKind.map) {
      throw new ModulePickleError('ERR_MP_PROTOCOL_GARBAGE', `unknown task kind ${String(kind)}`);
    }
    const args = await loads(body.subarray(argsAt), ctx.beside ? { ...loadsOptions, outOfBand: ctx.beside } : loadsOptions);
    if (!Array.isArray(args)) throw new ModulePickleError('ERR_MP_PROTOCOL_GARBAGE', 'task arguments are not an array');
    let result: unknown;
    if (kind === TaskKind.map) {
      const out: unknown[] = new Array(args.length);
      for (index = 0; index < args.length; index++) {
        const r = fn(args[index]);
        out[index] = isThenable(r) ? await r : r;
      }
      index = undefined;
      result = out;
    } else {
      const r = fn(...args);
      result = isThenable(r) ? await r : r;
    }
    if (!ctx.sharesMemory) return { status: ResultStatus.ok, payload: await dumps(result, ctx.dumpsOptions) };
    const beside = besideCollector(transferMark(result));
    const payload = await dumps(result, { ...ctx.dumpsOptions, outOfBand: beside.claim });
    return { status: ResultStatus.ok, payload, beside: beside.buffers.length > 0 ? beside : undefined };
  } catch (err) {
    const info = errorInfo(err);
    if (index !== undefined) info.index = index;
    return { status: ResultStatus.error, payload: await dumps(info, ctx.dumpsOptions).catch(() => dumps(errorInfo(String(err)))) };
  }
}

/** A remote exception as data: what travels back in an `error` outcome. */
export interface ErrorInfo {
  name: string;
  message: string;
  stack: string;
  code?: string;
  /** The cause: an error (as ErrorInfo) or a plain value. */
  cause?: { error: ErrorInfo } | { value: unknown };
  /** Index of the failing item in a map chunk. */
  index?: number;
  /** A non-Error value was thrown. */
  thrown?: unknown;
}

/** Describes any thrown value as {@link ErrorInfo} (causes followed up to depth 8). */
export function errorInfo(err: unknown, depth = 0): ErrorInfo {
  if (!(err instanceof Error)) {
    const info: ErrorInfo = { name: 'NonError', message: `a non-Error value was thrown: ${safeString(err)}`, stack: '' };
    if (isData(err)) info.thrown = err;
    return info;
  }
  const info: ErrorInfo = { name: err.name, message: err.message, stack: err.stack ?? `${err.name}: ${err.message}` };
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') info.code = code;
  if ('cause' in err && depth < 8) {
    const cause = err.cause;
    info.cause = cause instanceof Error ? { error: errorInfo(cause, depth + 1) } : { value: isData(cause) ? cause : safeString(cause) };
  }
  return info;
}

/** Options for turning an outcome back into a value. */
export interface DecodeOutcomeOptions {
  readonly loadsOptions?: PickleOptions;
  /** Buffers that came beside the payload (threads). */
  readonly beside?: readonly ArrayBufferLike[] | undefined;
  /** Rewrites a remote stack so its frames point at the caller's files. */
  readonly mapStack?: (stack: string) => string;
  /** Names the worker in messages. */
  readonly worker?: string;
}

/** Decodes a finished task's payload: the value, or throws the remote exception as {@link RemoteError}. */
export async function decodeOutcome(status: number, payload: Uint8Array, options: DecodeOutcomeOptions = {}): Promise<unknown> {
  if (status === ResultStatus.ok) return loads(payload, options.beside ? { ...options.loadsOptions, outOfBand: options.beside } : options.loadsOptions);
  const info = (await loads(payload, options.loadsOptions)) as ErrorInfo;
  throw remoteError(info, options);
}

/** Builds the local {@link RemoteError} for a remote exception (cause chain included). */
export function remoteError(info: ErrorInfo, options: DecodeOutcomeOptions = {}): RemoteError {
  const cause = info.cause && 'error' in info.cause ? remoteError(info.cause.error, options) : info.cause?.value;
  const where = options.worker ? ` on worker ${options.worker}` : '';
  const item = info.index !== undefined ? ` (map item ${info.index})` : '';
  const err = new RemoteError(info.code ?? 'ERR_MP_REMOTE', `${info.name}${where}${item}: ${info.message}`, info.cause ? { cause } : undefined);
  err.remoteName = info.name;
  err.remoteStack = options.mapStack ? options.mapStack(info.stack) : info.stack;
  Object.defineProperty(err, 'remoteMessage', { value: info.message, enumerable: false, configurable: true, writable: true });
  if (info.index !== undefined) Object.defineProperty(err, 'index', { value: info.index, enumerable: false, configurable: true, writable: true });
  if (info.thrown !== undefined) Object.defineProperty(err, 'thrown', { value: info.thrown, enumerable: false, configurable: true, writable: true });
  // The remote frames first (they say where it failed), then where it was awaited locally.
  const local = (err.stack ?? '').split('\n').slice(1).join('\n');
  err.stack = `${err.name} [${err.code}]: ${err.message}\n${frames(err.remoteStack)}\n    --- awaited locally ---\n${local}`;
  return err;
}

function frames(stack: string): string {
  return stack
    .split('\n')
    .filter((l) => /^\s+at /.test(l) && !/[\\/]executors[\\/](?:task|worker-loop)\.[jt]s:/.test(l))
    .join('\n');
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (typeof v === 'object' || typeof v === 'function') && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

function isData(v: unknown): boolean {
  return v === null || ['string', 'number', 'boolean', 'undefined', 'bigint'].includes(typeof v);
}

function safeString(v: unknown): string {
  try {
    return String(v);
  } catch {
    return Object.prototype.toString.call(v);
  }
}
