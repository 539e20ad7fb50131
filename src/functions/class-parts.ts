/**
 * Class-specific parts of by-value encoding: which own and prototype properties the class body does not define
 * (static fields, members added after the declaration) and so must travel as properties.
 */
import { functionInfo } from './function-info.ts';

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

/** Prototype properties of a class that its body does not define (added after the declaration). */
export function protoExtras(cls: Function, classSource: string): unknown[] | undefined {
  const proto = (cls as { prototype?: unknown }).prototype;
  if (typeof proto !== 'object' || proto === null) return undefined;
  const out: unknown[] = [];
  for (const key of Reflect.ownKeys(proto)) {
    if (key === 'constructor') continue;
    const d = Object.getOwnPropertyDescriptor(proto, key) as PropertyDescriptor;
    if (definedInBody(d, classSource)) continue;
    out.push(key, 'value' in d ? { v: d.value, w: d.writable, e: d.enumerable, c: d.configurable } : { g: d.get, s: d.set, e: d.enumerable, c: d.configurable });
  }
  return out.length ? out : undefined;
}

/** Own property keys of a function that the codec keeps (static members and added properties). */
export function functionOwnKeys(fn: Function, byValue: WeakSet<Function>): (string | symbol)[] {
  if (!byValue.has(fn)) return [];
  byValue.delete(fn);
  const info = functionInfo(fn);
  const kind = info.source?.kind;
  const keys: (string | symbol)[] = [];
  for (const key of Reflect.ownKeys(fn)) {
    if (key === 'length' || key === 'arguments' || key === 'caller') continue;
    if (key === 'prototype') {
      if (kind !== 'function' || info.source?.async || info.source?.generator) continue;
      const proto = (fn as { prototype?: unknown }).prototype as object | undefined;
      const plain = proto && Object.getPrototypeOf(proto) === Object.prototype && Reflect.ownKeys(proto).length === 1 && (proto as { constructor?: unknown }).constructor === fn;
      if (plain) continue;
    }
    if (kind === 'class' && info.source) {
      const d = Object.getOwnPropertyDescriptor(fn, key);
      if (key === 'prototype' || (d && definedInBody(d, info.source.expression))) continue;
    }
    keys.push(key);
  }
  return keys;
}
