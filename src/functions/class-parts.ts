/**
 * Own and prototype properties of by-value functions and classes that their source text does not recreate: added
 * or redefined properties (`name`, `length`, a replaced `prototype`, static fields, members added after the
 * declaration), deleted ones, changed attributes of members the class body defines (`Object.freeze(C)`), a
 * prototype made non-extensible, and the current values of static `#private` fields. The sender computes them
 * (`ownKeysToKeep`, `shapeState`); the receiver applies them to the rebuilt function (`applyShapeState`) before
 * the codec defines the kept own properties. */
import { DecodeError, EncodeError } from '../errors.ts';
import { functionInfo } from './function-info.ts';
import { readPrivateMembers } from './inspector.ts';
import type { ClassMemberShape, SourceInfo } from './free-variables.ts';

/** Attribute bits of a property whose value the class body recreates: only its attributes travel. */
const W = 1;
const E = 2;
const C = 4;

/** What the receiver applies to a rebuilt function besides its kept own properties. */
export interface ShapeState {
  /** Class prototype properties the body does not define: `[key, descriptor, ...]` (`{ a }` = attributes only). */
  readonly proto?: readonly unknown[];
  /** Own keys at home, when the receiver's rebuilt function may have keys that were deleted at home. */
  readonly keys?: readonly (string | symbol)[];
  /** Own properties the class body defines whose attributes changed: `[key, attribute bits, ...]`. */
  readonly attrs?: readonly unknown[];
  /** Own keys of the class prototype at home (members deleted at home are deleted). */
  readonly protoKeys?: readonly (string | symbol)[];
  /** The class prototype was not extensible at home. */
  readonly protoClosed?: boolean;
  /** Current values of the class's static `#private` fields: `[name, value, ...]`. */
  readonly statics?: readonly unknown[];
  /**
   * Methods and accessors of the class body whose own properties changed (a redefined `name` or `length`, added
   * keys): `[onPrototype, key, slot ('v' | 'g' | 's'), own keys, [key, descriptor, ...], extensible, ...]`.
   */
  readonly members?: readonly unknown[];
  /** The function's own [[Prototype]], when `Object.setPrototypeOf` changed it from the one its kind gets. */
  readonly fnProto?: object | null;
}

// The [[Prototype]] each kind of function gets from its definition.
const plainFnProto = Function.prototype;
const asyncFnProto = Object.getPrototypeOf(async function () {}) as object;
const generatorFnProto = Object.getPrototypeOf(function* () {}) as object;
const asyncGeneratorFnProto = Object.getPrototypeOf(async function* () {}) as object;

/** The [[Prototype]] the source text gives a function (a class with heritage: none to compare, it is sent). */
function definedProto(source: SourceInfo): object | undefined {
  if (source.kind === 'class') return source.heritage ? undefined : plainFnProto;
  if (source.generator) return source.async ? asyncGeneratorFnProto : generatorFnProto;
  return source.async ? asyncFnProto : plainFnProto;
}

const setStaticPrivate = Symbol.for('modulepickle.setStaticPrivate');
const setPrivate = Symbol.for('modulepickle.setPrivate');

// Injected by instance-private.ts; never deleted on the receiver.
const hookKeys = new Set<string | symbol>([setPrivate, setStaticPrivate]);

/** Whether a property value is defined by the class body itself (its source text is inside the class source). */
function definedInBody(d: PropertyDescriptor, classSource: string): boolean {
  const fns = [d.value, d.get, d.set].filter((f): f is Function => typeof f === 'function');
  if (!fns.length) return false;
  return fns.every((f) => {
    try {
      return classSource.includes(Function.prototype.toString.call(f));
    } catch {
      return false;
    }
  });
}

function bits(d: PropertyDescriptor): number {
  return (d.writable ? W : 0) | (d.enumerable ? E : 0) | (d.configurable ? C : 0);
}

/** Attribute bits a class body gives its methods and accessors (and the prototype's `constructor`). */
function bodyDefault(d: PropertyDescriptor): number {
  return 'value' in d ? W | C : C;
}

/** Prototype properties of a class that its body does not define, and body members whose attributes changed. */
function protoParts(cls: Function, proto: object, classSource: string): unknown[] | undefined {
  const out: unknown[] = [];
  for (const key of Reflect.ownKeys(proto)) {
    const d = Object.getOwnPropertyDescriptor(proto, key) as PropertyDescriptor;
    if ((key === 'constructor' && d.value === cls) || (key !== 'constructor' && definedInBody(d, classSource))) {
      if (bits(d) !== bodyDefault(d)) out.push(key, { a: bits(d) });
      continue;
    }
    out.push(key, describe(d));
  }
  return out.length ? out : undefined;
}

type Slot = 'v' | 'g' | 's';
const slotKinds: Readonly<Record<Slot, ClassMemberShape['kind']>> = { v: 'method', g: 'get', s: 'set' };

/** A property as a plain record (value or accessor, with attributes) for a state list. */
function describe(d: PropertyDescriptor): Record<string, unknown> {
  return 'value' in d ? { v: d.value, w: d.writable, e: d.enumerable, c: d.configurable } : { g: d.get, s: d.set, e: d.enumerable, c: d.configurable };
}

/** The descriptor a `describe` record stands for. @throws ERR_MP_BAD_FUNCTION */
function descriptorOf(d: unknown, what: string): PropertyDescriptor {
  if (typeof d !== 'object' || d === null) bad(what);
  const r = d as { v?: unknown; w?: boolean; g?: () => unknown; s?: (v: unknown) => void; e?: boolean; c?: boolean };
  const desc: PropertyDescriptor = 'v' in r ? { value: r.v, writable: r.w === true } : { get: r.g, set: r.s };
  desc.enumerable = r.e === true;
  desc.configurable = r.c === true;
  return desc;
}

/** Whether a body member's function has exactly the own properties its definition gives it. */
function pristineMember(f: Function, name: string, length: number | undefined): boolean {
  if (!Object.isExtensible(f) || !Object.hasOwn(f, 'name') || !Object.hasOwn(f, 'length')) return false;
  for (const k of Reflect.ownKeys(f)) {
    const d = Object.getOwnPropertyDescriptor(f, k) as PropertyDescriptor;
    if (k === 'name' || k === 'length') {
      if (!('value' in d) || d.writable || d.enumerable || !d.configurable) return false;
      if (d.value !== (k === 'name' ? name : length)) return false;
    } else if (k === 'prototype') {
      // A generator method's own prototype: an empty object, writable, neither enumerable nor configurable.
      const p: unknown = d.value;
      if (!d.writable || d.enumerable || d.configurable || typeof p !== 'object' || p === null || Reflect.ownKeys(p).length || !Object.isExtensible(p)) return false;
    } else {
      return false;
    }
  }
  return true;
}

/** Own-property changes of the body-defined methods and accessors on `holder` (the class or its prototype). */
function memberParts(holder: object, onPrototype: boolean, source: SourceInfo, cls: Function, out: unknown[]): void {
  for (const key of Reflect.ownKeys(holder)) {
    if (key === 'prototype' || (key === 'constructor' && onPrototype)) continue;
    const d = Object.getOwnPropertyDescriptor(holder, key) as PropertyDescriptor;
    if (!definedInBody(d, source.expression)) continue;
    for (const slot of ['v', 'g', 's'] as const) {
      const f: unknown = slot === 'v' ? d.value : slot === 'g' ? d.get : d.set;
      if (typeof f !== 'function' || f === cls) continue;
      // Keys the source computes are not in `members`: their length is unknown, so their properties travel.
      const shape = source.members?.find((m) => m.static !== onPrototype && m.kind === slotKinds[slot] && (typeof key === 'string' ? !m.symbol && m.key === key : m.symbol && m.key === key.description));
      const base = typeof key === 'string' ? key : key.description ? `[${key.description}]` : '';
      const name = slot === 'v' ? base : `${slot === 'g' ? 'get' : 'set'} ${base}`;
      if (shape && pristineMember(f, name, shape.length)) continue;
      const props: unknown[] = [];
      for (const k of Reflect.ownKeys(f)) props.push(k, describe(Object.getOwnPropertyDescriptor(f, k) as PropertyDescriptor));
      out.push(onPrototype, key, slot, Reflect.ownKeys(f), props, Object.isExtensible(f));
    }
  }
}

/** Applies `ShapeState.members` to the rebuilt class. @throws ERR_MP_BAD_FUNCTION */
function applyMembers(cls: Function, members: unknown): void {
  if (!Array.isArray(members)) bad('class members');
  for (let i = 0; i + 5 < members.length; i += 6) {
    const holder = (members[i] === true ? (cls as { prototype?: unknown }).prototype : cls) as object;
    const key = members[i + 1] as string | symbol;
    const slot = members[i + 2];
    const props = members[i + 4];
    if ((typeof key !== 'string' && typeof key !== 'symbol') || typeof holder !== 'object' && typeof holder !== 'function') bad('class members');
    const d = Object.getOwnPropertyDescriptor(holder, key);
    const f: unknown = d === undefined ? undefined : slot === 'v' ? d.value : slot === 'g' ? d.get : slot === 's' ? d.set : bad('class member slot');
    if (typeof f !== 'function' || !Array.isArray(props)) bad('class members');
    deleteMissing(f, keyList(members[i + 3], 'class member keys'));
    for (let j = 0; j + 1 < props.length; j += 2) {
      const k = props[j] as string | symbol;
      if (typeof k !== 'string' && typeof k !== 'symbol') bad('class member keys');
      Object.defineProperty(f, k, descriptorOf(props[j + 1], 'class member property'));
    }
    if (members[i + 5] === false) Object.preventExtensions(f);
  }
}

/** Whether a function's `prototype` is the one its source text creates (so it need not travel). */
function defaultPrototype(fn: Function, source: SourceInfo): boolean {
  const d = Object.getOwnPropertyDescriptor(fn, 'prototype');
  if (source.kind === 'class') return true;
  // Plain functions and generators (methods too) have one; arrows, async functions, other methods do not.
  const hasOwn = source.generator || (source.kind === 'function' && !source.async);
  if (!hasOwn || !d) return !hasOwn && !d;
  if (!('value' in d) || !d.writable || d.enumerable || d.configurable) return false;
  const proto = d.value as unknown;
  if (typeof proto !== 'object' || proto === null || !Object.isExtensible(proto)) return false;
  if (source.generator) {
    // A generator's prototype inherits from %GeneratorPrototype% (async: %AsyncGeneratorPrototype%), no own keys.
    const base = (Object.getPrototypeOf(fn) as { prototype?: unknown }).prototype;
    return Object.getPrototypeOf(proto) === base && Reflect.ownKeys(proto).length === 0;
  }
  if (Object.getPrototypeOf(proto) !== Object.prototype || Reflect.ownKeys(proto).length !== 1) return false;
  const c = Object.getOwnPropertyDescriptor(proto, 'constructor');
  return c !== undefined && c.value === fn && c.writable === true && !c.enumerable && c.configurable === true;
}

/**
 * Own property keys of a by-value function that the codec keeps: every key except those the source text recreates
 * as they are (class body members with their default attributes, a default `prototype`).
 */
export function ownKeysToKeep(fn: Function, byValue: WeakSet<Function>): (string | symbol)[] {
  if (!byValue.has(fn)) return [];
  byValue.delete(fn);
  const source = functionInfo(fn).source;
  if (!source) return [];
  const keys: (string | symbol)[] = [];
  for (const key of Reflect.ownKeys(fn)) {
    if (key === 'arguments' || key === 'caller') continue;
    if (key === 'prototype' && defaultPrototype(fn, source)) continue;
    if (source.kind === 'class') {
      const d = Object.getOwnPropertyDescriptor(fn, key);
      if (d && definedInBody(d, source.expression)) continue;
    }
    keys.push(key);
  }
  return keys;
}

/** Shape facts of a by-value function that its kept own properties do not carry (see `ShapeState`). @throws ERR_MP_PRIVATE_STATE */
export function shapeState(fn: Function, source: SourceInfo, path?: () => unknown): ShapeState | undefined {
  const own = Object.prototype.hasOwnProperty;
  const defined = definedProto(source);
  const actual = Object.getPrototypeOf(fn) as object | null;
  const protoChange = defined !== undefined && actual !== defined ? { fnProto: actual } : undefined;
  if (source.kind !== 'class') {
    // The rebuilt function has `length` and `name`; send the key list only when one was deleted.
    const keys = own.call(fn, 'length') && own.call(fn, 'name') ? undefined : { keys: Reflect.ownKeys(fn) };
    return keys || protoChange ? { ...keys, ...protoChange } : undefined;
  }
  const attrs: unknown[] = [];
  for (const key of Reflect.ownKeys(fn)) {
    const d = Object.getOwnPropertyDescriptor(fn, key) as PropertyDescriptor;
    if (key !== 'prototype' && definedInBody(d, source.expression) && bits(d) !== bodyDefault(d)) attrs.push(key, bits(d));
  }
  const statics: unknown[] = [];
  const staticFields = source.privateState?.staticFields;
  if (staticFields?.length) {
    // Static private fields are re-initialized when the receiver evaluates the class: their current values travel.
    const wanted = new Set(staticFields);
    for (const [name, value] of readPrivateMembers(fn)) if (wanted.delete(name)) statics.push(name, value);
    if (wanted.size) {
      // The receiver would silently start from the initializers: refuse instead.
      throw new EncodeError('ERR_MP_PRIVATE_STATE', `the static private fields ${[...wanted].join(', ')} of class ${fn.name || '(anonymous)'} could not be read (no inspector session in this thread?), so their current values cannot travel`, path?.() as never);
    }
  }
  const proto = (fn as { prototype?: unknown }).prototype;
  const hasProto = typeof proto === 'object' && proto !== null;
  const parts = hasProto ? protoParts(fn, proto, source.expression) : undefined;
  const members: unknown[] = [];
  memberParts(fn, false, source, fn, members);
  if (hasProto) memberParts(proto, true, source, fn, members);
  return {
    keys: Reflect.ownKeys(fn),
    ...protoChange,
    ...(attrs.length ? { attrs } : {}),
    ...(members.length ? { members } : {}),
    ...(statics.length ? { statics } : {}),
    ...(parts ? { proto: parts } : {}),
    ...(hasProto ? { protoKeys: Reflect.ownKeys(proto) } : {}),
    ...(hasProto && !Object.isExtensible(proto) ? { protoClosed: true } : {}),
  };
}

function bad(what: string): never {
  throw new DecodeError('ERR_MP_BAD_FUNCTION', `malformed function in payload: ${what}`);
}

function keyList(v: unknown, what: string): Set<string | symbol> {
  if (!Array.isArray(v) || !v.every((k) => typeof k === 'string' || typeof k === 'symbol')) bad(what);
  return new Set(v as (string | symbol)[]);
}

/** Deletes the configurable own keys of `o` that are not in `keep` (deleted at home). */
function deleteMissing(o: object, keep: Set<string | symbol>): void {
  for (const k of Reflect.ownKeys(o)) {
    if (keep.has(k) || hookKeys.has(k)) continue;
    if (Object.getOwnPropertyDescriptor(o, k)?.configurable) Reflect.deleteProperty(o, k);
  }
}

function setAttrs(o: object, key: string | symbol, b: unknown): void {
  if (typeof b !== 'number') bad('attributes');
  const d = Object.getOwnPropertyDescriptor(o, key);
  if (!d) return;
  const desc: PropertyDescriptor = { enumerable: (b & E) !== 0, configurable: (b & C) !== 0 };
  if ('value' in d) desc.writable = (b & W) !== 0;
  Object.defineProperty(o, key, desc);
}

/** Applies a function's `ShapeState` on the receiver (its own properties follow from the codec). @throws ERR_MP_BAD_FUNCTION */
export function applyShapeState(fn: Function, state: ShapeState): void {
  if (state.keys !== undefined) deleteMissing(fn, keyList(state.keys, 'own keys'));
  const attrs = state.attrs;
  if (attrs !== undefined) {
    if (!Array.isArray(attrs)) bad('attributes');
    for (let i = 0; i < attrs.length; i += 2) setAttrs(fn, attrs[i] as string | symbol, attrs[i + 1]);
  }
  if (state.members !== undefined) applyMembers(fn, state.members);
  if ('fnProto' in state) {
    const p = state.fnProto;
    if (typeof p !== 'object' && typeof p !== 'function') bad('function prototype');
    Object.setPrototypeOf(fn, p);
  }
  const statics = state.statics;
  if (statics !== undefined) {
    const set = (fn as unknown as Record<symbol, unknown>)[setStaticPrivate];
    if (!Array.isArray(statics) || typeof set !== 'function') bad('static private fields');
    for (let i = 0; i < statics.length; i += 2) (set as (n: unknown, v: unknown) => void).call(fn, statics[i], statics[i + 1]);
  }
  // The injected hooks (instance-private.ts) must not keep a class frozen at home from being frozen here: the
  // static one is used once, just now; the instance one stays for later payloads, read-only.
  if (Object.hasOwn(fn, setStaticPrivate)) Reflect.deleteProperty(fn, setStaticPrivate);
  if (Object.hasOwn(fn, setPrivate)) Object.defineProperty(fn, setPrivate, { writable: false, configurable: false });
  if (state.proto === undefined && state.protoKeys === undefined && state.protoClosed === undefined) return;
  const target = (fn as { prototype?: object }).prototype;
  if (typeof target !== 'object' || target === null) bad('class prototype');
  if (state.protoKeys !== undefined) deleteMissing(target, keyList(state.protoKeys, 'prototype keys'));
  const proto = state.proto;
  if (proto !== undefined) {
    if (!Array.isArray(proto)) bad('class prototype');
    for (let i = 0; i < proto.length; i += 2) {
      const key = proto[i] as string | symbol;
      const d = proto[i + 1] as { v?: unknown; w?: boolean; g?: () => unknown; s?: (v: unknown) => void; e?: boolean; c?: boolean; a?: number };
      if (typeof d !== 'object' || d === null || (typeof key !== 'string' && typeof key !== 'symbol')) bad('class prototype');
      if ('a' in d) {
        setAttrs(target, key, d.a);
        continue;
      }
      Object.defineProperty(target, key, descriptorOf(d, 'class prototype'));
    }
  }
  if (state.protoClosed === true) Object.preventExtensions(target);
}
