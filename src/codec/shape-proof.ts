/**
 * Hidden-class identity as an exact proof that an object or array is plain, without a descriptor per property.
 *
 * V8 keeps an object's named properties (keys, order, attributes, data or accessor), its prototype, its
 * extensibility and its elements kind in its hidden class (map). So an object with fast properties and fast elements
 * that has the same map as an exemplar whose every property the encoder proved a default data property, and the same
 * own key list, has default data properties only: its values can be read directly. Two dictionary-mode objects can
 * share a map while their properties differ, hence the exemplar must have fast properties (a map is either a
 * dictionary map or not, so the same map then proves the same of the other object); fast elements are always
 * writable, enumerable and configurable data, and the sealed, frozen and non-extensible elements kinds are others.
 * An array with the realm's initial map for a packed elements kind has no holes, no property besides a writable
 * `length`, and is extensible.
 *
 * A map comparison that is unavailable or fails says "not the same", which only sends the value to the descriptor
 * proof: a false negative costs speed, never exactness. The intrinsics come from ../natives.ts and are checked on
 * probes below before any use.
 */
import { NativeSet } from '../natives.ts';

interface Intrinsics {
  same(a: object, b: object): boolean;
  fast(o: object): boolean;
}

/** One packed array per fast elements kind (Smi, double, tagged): the realm's initial array maps. */
const packedKinds: readonly unknown[][] = [[0], [0.5], ['']];

/** Whether the intrinsics say what this module relies on, on objects whose answers are known. */
function agrees(n: Intrinsics): boolean {
  const a = { x: 1, y: 's' };
  const b = { x: 2, y: 't' };
  const readOnly = { x: 1, y: 's' };
  Object.defineProperty(readOnly, 'y', { writable: false });
  const hidden = { x: 1, y: 's' };
  Object.defineProperty(hidden, 'y', { enumerable: false });
  const accessor = { x: 1, y: 's' };
  Object.defineProperty(accessor, 'y', { get: () => 's', enumerable: true, configurable: true });
  const dictionary: Record<string, number> = { x: 1, y: 2, z: 3 };
  delete dictionary['x'];
  const named: unknown[] = [1, 2];
  (named as unknown as Record<string, number>)['k'] = 1;
  const fixedLength = [1, 2];
  Object.defineProperty(fixedLength, 'length', { writable: false });
  return n.same(a, b) && !n.same(a, readOnly) && !n.same(a, hidden) && !n.same(a, accessor) &&
    n.fast(a) && !n.fast(dictionary) &&
    n.same([1, 2], packedKinds[0]!) && n.same([1.5], packedKinds[1]!) && n.same([{}], packedKinds[2]!) &&
    // eslint-disable-next-line no-sparse-arrays
    !packedKinds.some((k) => n.same([1, , 2], k) || n.same(named, k) || n.same(fixedLength, k));
}

// Both take heap objects only; every caller passes objects.
const natives = new NativeSet<Intrinsics>({
  same: ['a, b', 'return %HaveSameMap(a, b)'],
  fast: ['o', 'return %HasFastProperties(o) && %HasFastElements(o)'],
}, agrees);

/** Whether `a` and `b` have the same hidden class (false when that cannot be told). */
export function sameMap(a: object, b: object): boolean {
  const n = natives.get();
  if (n === null) return false;
  try {
    return n.same(a, b);
  } catch {
    return natives.retry((m) => m.same(a, b), false);
  }
}

/** Whether `o`, proven plain by its descriptors, may stand for its map: fast properties and fast elements. */
export function canStandForMap(o: object): boolean {
  const n = natives.get();
  if (n === null) return false;
  try {
    return n.fast(o);
  } catch {
    return natives.retry((m) => m.fast(o), false);
  }
}

/** Whether `v` is a packed array with the realm's initial map: every index a default data property, no other key. */
export function isPackedPlainArray(v: unknown[]): boolean {
  return sameMap(v, packedKinds[2]!) || sameMap(v, packedKinds[0]!) || sameMap(v, packedKinds[1]!);
}

/** Whether the map proofs are in use (for tests and benchmarks). */
export function shapeProofAvailable(): boolean {
  return natives.get() !== null;
}
