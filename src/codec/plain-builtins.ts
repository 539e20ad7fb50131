/**
 * Map, Set and Date. A plain one (its own prototype, extensible, no own property) is written natively by the encoder
 * (T_MAP, T_SET, T_DATE), with no reducer frames. Every other one (a subclass instance, one with own properties,
 * another prototype, non-extensible) takes these reducers, whose tail keeps all of that.
 */
import { DenseList } from './encode-frames.ts';
import type { Reducer } from './registry.ts';

// The intrinsics, not `m.size` or `for (... of m)`: an own `size` getter, `Symbol.iterator` or `forEach` on the
// instance is user code, which the codec keeps as a property and never runs.
const mapSize = Object.getOwnPropertyDescriptor(Map.prototype, 'size')!.get as (this: Map<unknown, unknown>) => number;
const mapForEach = Map.prototype.forEach;
const setSize = Object.getOwnPropertyDescriptor(Set.prototype, 'size')!.get as (this: Set<unknown>) => number;
const setForEach = Set.prototype.forEach;
const dateTime = Date.prototype.getTime;

/** A Map's entry count, read through the intrinsic. */
export const mapSizeOf = (m: Map<unknown, unknown>): number => mapSize.call(m);
/** A Set's item count, read through the intrinsic. */
export const setSizeOf = (s: Set<unknown>): number => setSize.call(s);

/** A Date's time value, read through the intrinsic. */
export const timeOf = (d: Date): number => dateTime.call(d);

/** Keys and values of a Map in insertion order, flat: [k0, v0, k1, v1, ...], into `flat` from index 0. */
export function mapEntries(m: Map<unknown, unknown>, flat: unknown[] = new Array(mapSize.call(m) * 2)): unknown[] {
  let i = 0;
  // forEach, not for...of: no [key, value] pair and no iterator result per entry.
  mapForEach.call(m, (v, k) => {
    flat[i++] = k;
    flat[i++] = v;
  });
  return flat;
}

/** Members of a Set in insertion order, into `items` from index 0. */
export function setItems(s: Set<unknown>, items: unknown[] = new Array(setSize.call(s))): unknown[] {
  let i = 0;
  setForEach.call(s, (v) => {
    items[i++] = v;
  });
  return items;
}

/** A state array the codec wrote dense (T_ARRAY_DENSE): a hole means a crafted payload. */
function denseArray(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) throw new TypeError(`${what} state must be an array`);
  return v;
}
function item(list: unknown[], i: number, what: string): unknown {
  if (!(i in list)) throw new TypeError(`${what} state has a hole at ${i}`);
  return list[i];
}

/** The general form of a Map: restored empty, then filled from a flat state list. */
export const mapReducer: Reducer<Map<unknown, unknown>, null, unknown> = {
  name: 'Map',
  subclassable: true,
  ownProps: true,
  reduce: () => null,
  restore: () => new Map(),
  getState: (m) => new DenseList(mapEntries(m)),
  setState(m, state) {
    const flat = denseArray(state, 'Map');
    if (flat.length % 2) throw new TypeError('Map state must be a flat array of pairs');
    for (let i = 0; i < flat.length; i += 2) m.set(item(flat, i, 'Map'), item(flat, i + 1, 'Map'));
  },
};

/** The general form of a Set: restored empty, then filled from its state list. */
export const setReducer: Reducer<Set<unknown>, null, unknown> = {
  name: 'Set',
  subclassable: true,
  ownProps: true,
  reduce: () => null,
  restore: () => new Set(),
  getState: (s) => new DenseList(setItems(s)),
  setState(s, state) {
    const items = denseArray(state, 'Set');
    for (let i = 0; i < items.length; i++) s.add(item(items, i, 'Set'));
  },
};

/** The general form of a Date: its time value as the argument. */
export const dateReducer: Reducer<Date, number, unknown> = {
  name: 'Date',
  subclassable: true,
  ownProps: true,
  reduce: timeOf,
  restore: (t) => {
    if (typeof t !== 'number') throw new TypeError('expected a time value');
    return new Date(t);
  },
};
