/** The decoder's explicit stack: sentinels, frame kinds, what a frame waits for, and the pooled Frame record. */
import type { Reducer } from './registry.ts';

/** A reducer of any type, as the registry hands it out. */
export type AnyReducer = Reducer<object, unknown, unknown>;

/** Placeholder for an object whose creation is under way (its reducer's arguments are being decoded). */
export const PENDING: unique symbol = Symbol('pending');
/** `#read` pushed a frame: the value arrives when that frame is done. */
export const OPEN: unique symbol = Symbol('open');
/** No value is being delivered to the frame. */
export const NONE: unique symbol = Symbol('none');
/** The largest array length JavaScript allows. */
export const MAX_ARRAY_LENGTH = 2 ** 32 - 1;
const { defineProperty } = Object;
const u8slice = Uint8Array.prototype.slice;
/** An owning copy (Buffer#slice would return a view into the payload). */
export const copyBytes = (view: Uint8Array): Uint8Array => u8slice.call(view);

// Frame kinds.
/** Frame kinds: what a frame is reading the children of. */
export const D_DENSE = 0;
export const D_SIMPLE = 1;
export const D_PROPS = 2;
export const D_INDICES = 3;
export const D_REDUCE = 4;
export const D_SHAPE = 5;
export const D_MAP = 6;
export const D_SET = 7;

// What the value a frame waits for is: D_PROPS / D_INDICES / D_REDUCE.
/** What the value a frame waits for is for. */
export const W_PROTO = 1;
export const W_VALUE = 2;
export const W_GET = 3;
export const W_SET = 4;
export const W_ARGS = 5;
export const W_RESTORE = 6;
export const W_STATE = 7;

/** One container on the decoder's explicit stack; pooled per decoder (one per depth level). */
export class Frame {
  kind = 0;
  obj: object = Object.prototype;
  /** Byte offset of the container's tag (for errors). */
  at = 0;
  n = 0;
  i = 0;
  phase = 0;
  want = 0;
  flags = 0;
  attrs = false;
  key: string | symbol = '';
  keys: (string | symbol)[] = [];
  attr = 0;
  getter: unknown = undefined;
  last = -1;
  len = 0;
  id = 0;
  reducer: AnyReducer | undefined = undefined;
  restore: unknown = undefined;
  /** D_REDUCE: the value once restored; D_MAP: the key of the entry whose value is being read. */
  value: unknown = undefined;
}

/** Sets an own data property (an own `__proto__` key stays data). */
export function assign(obj: Record<string | symbol, unknown>, k: string | symbol, v: unknown): void {
  if (k === '__proto__') defineProperty(obj, k, { value: v, writable: true, enumerable: true, configurable: true });
  else obj[k] = v;
}
