/**
 * The own string keys of an array or TypedArray that are not indices, without one string per element.
 * `Object.getOwnPropertyNames` lists every index first (a 1M-element TypedArray takes about half a second);
 * above a size threshold the keys come from the inspector protocol (`Runtime.getProperties` with
 * `nonIndexedPropertiesOnly`, synchronous on this thread, about 0.1 ms), which reads no value and runs no getter.
 */
import { Session } from 'node:inspector';

/** Element count above which the inspector is cheaper than listing every index. */
export const NAMED_KEYS_THRESHOLD = 2048;

const holderKey = Symbol.for('modulepickle.namedKeys');
interface Holder {
  v: unknown;
}
type Post = (method: string, params: object) => unknown;
let post: Post | null | undefined;

function connect(): Post | null {
  try {
    const session = new Session();
    session.connect();
    const holder: Holder = { v: undefined };
    // The object is handed over through a non-enumerable global slot that only this module writes.
    Object.defineProperty(globalThis, holderKey, { value: holder, configurable: true });
    const call: Post = (method, params) => {
      let out: unknown;
      let err: unknown;
      session.post(method, params, (e, r) => {
        err = e;
        out = r;
      });
      if (err) throw err;
      if (out === undefined) throw new Error('inspector call did not complete synchronously');
      return out;
    };
    const probe = namedKeysVia(call, holder, Object.assign(new Uint8Array(1), { x: 1 }));
    if (probe.length !== 1 || probe[0] !== 'x') throw new Error('inspector did not list named keys');
    return (method, params) => call(method, params);
  } catch {
    return null; // no inspector in this build of Node, or it misbehaves: list every key instead
  }
}

interface RemoteProperty {
  readonly name: string;
  readonly symbol?: unknown;
  readonly isOwn?: boolean;
}

function namedKeysVia(call: Post, holder: Holder, v: object): string[] {
  holder.v = v;
  let objectId: string | undefined;
  try {
    const res = call('Runtime.evaluate', { expression: 'globalThis[Symbol.for("modulepickle.namedKeys")].v', objectGroup: 'modulepickle', silent: true }) as {
      result: { objectId?: string };
    };
    objectId = res.result.objectId;
  } finally {
    holder.v = undefined;
  }
  if (objectId === undefined) throw new Error('inspector gave no object id');
  try {
    const props = call('Runtime.getProperties', { objectId, ownProperties: true, nonIndexedPropertiesOnly: true }) as { result: RemoteProperty[] };
    const out: string[] = [];
    for (const p of props.result) if (p.symbol === undefined && p.isOwn !== false) out.push(p.name);
    return out;
  } finally {
    call('Runtime.releaseObjectGroup', { objectGroup: 'modulepickle' });
  }
}

/**
 * Own string keys of `v` other than its first `indices` index keys, in `Object.getOwnPropertyNames` order
 * (an array's `length` included). `indices` is the TypedArray's length, or the count of an array's elements.
 */
export function namedKeys(v: object, indices: number, isArray: boolean): string[] {
  if (indices > NAMED_KEYS_THRESHOLD) {
    if (post === undefined) post = connect();
    if (post !== null) {
      const holder = (globalThis as unknown as Record<symbol, Holder>)[holderKey]!;
      const keys = namedKeysVia(post, holder, v);
      // The inspector lists an array's `length` last; getOwnPropertyNames lists it first.
      if (!isArray) return keys;
      const rest = keys.filter((k) => k !== 'length');
      return ['length', ...rest];
    }
  }
  return Object.getOwnPropertyNames(v).slice(indices);
}
