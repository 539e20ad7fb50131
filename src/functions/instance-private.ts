/**
 * Instances of classes with private fields (`#x`). JS cannot read or create private fields from outside a class,
 * so: the sender reads them with the inspector; the class travels by value with two injected hooks (a constructor
 * token that skips the constructor body after the fields are initialized, and a static setter); the receiver
 * creates the instance with `new C(token)` and assigns the fields. Public own fields travel as usual.
 */
import { DecodeError, EncodeError } from '../errors.ts';
import type { Reducer } from '../codec/registry.ts';
import { analyzeSource } from './free-variables.ts';
import { readPrivateMembers } from './inspector.ts';

const setPrivate = Symbol.for('modulepickle.setPrivate');
const tokenKey = Symbol.for('modulepickle.construct');
if (!(tokenKey in globalThis)) Object.defineProperty(globalThis, tokenKey, { value: Object.freeze([]) });

const fieldCache = new WeakMap<Function, readonly string[] | null>();

/** Private instance field names a class declares (empty for classes without any or non-class functions). */
function privateFields(ctor: Function): readonly string[] {
  let f = fieldCache.get(ctor);
  if (f === undefined) {
    let text = '';
    try {
      text = Function.prototype.toString.call(ctor);
    } catch {
      text = '';
    }
    f = text.startsWith('class') && text.includes('#') ? (analyzeSource(text)?.privateState?.fields ?? null) : null;
    fieldCache.set(ctor, f);
  }
  return f ?? [];
}

/** The classes of an object's prototype chain that declare private instance fields (most derived first). */
function privateClasses(value: object): Function[] {
  const out: Function[] = [];
  for (let p = Object.getPrototypeOf(value) as object | null; p !== null && p !== Object.prototype; p = Object.getPrototypeOf(p) as object | null) {
    const d = Object.getOwnPropertyDescriptor(p, 'constructor');
    const ctor = d && 'value' in d ? d.value : undefined;
    if (typeof ctor === 'function' && ctor.prototype === p && privateFields(ctor).length) out.push(ctor);
  }
  return out;
}

/** Whether an object needs the private-state reducer. */
export function hasPrivateState(value: object): boolean {
  return typeof value === 'object' && privateClasses(value).length > 0;
}

interface InstanceArgs {
  readonly cls: Function;
}

/** Per declaring class: `[class, name, value, name, value, ...]` groups. */
type InstanceState = readonly (readonly unknown[])[];

/** Reducer for instances whose classes declare private fields. */
export const privateInstanceReducer: Reducer<object, InstanceArgs, InstanceState> = {
  name: 'mp.privateInstance',
  code: true,
  ownProps: true,
  reduce(value, ctx) {
    const proto = Object.getPrototypeOf(value) as { constructor?: unknown };
    const cls = proto.constructor;
    if (typeof cls !== 'function' || (cls as { prototype?: unknown }).prototype !== proto) {
      throw new EncodeError('ERR_MP_PRIVATE_STATE', 'an object with private fields whose prototype is not its class prototype cannot be pickled', ctx.path() as never);
    }
    return { cls };
  },
  getState(value) {
    const classes = privateClasses(value);
    const members = new Map(readPrivateMembers(value));
    return classes.map((c) => {
      const group: unknown[] = [c];
      for (const name of privateFields(c)) if (members.has(name)) group.push(name, members.get(name));
      return group;
    });
  },
  restore(args) {
    if (typeof args?.cls !== 'function') throw new DecodeError('ERR_MP_BAD_FUNCTION', 'malformed private instance in payload');
    try {
      return Reflect.construct(args.cls, [(globalThis as Record<symbol, unknown>)[tokenKey]]) as object;
    } catch (cause) {
      throw new DecodeError('ERR_MP_PRIVATE_STATE', `cannot create an instance of ${args.cls.name || 'a class'} with private fields: ${(cause as Error)?.message}`, undefined, { cause });
    }
  },
  setState(obj, state) {
    if (!Array.isArray(state)) throw new DecodeError('ERR_MP_BAD_FUNCTION', 'malformed private state in payload');
    for (const group of state as unknown[][]) {
      const cls = group[0] as Record<symbol, unknown> | undefined;
      const set = cls?.[setPrivate];
      if (typeof set !== 'function') {
        throw new DecodeError('ERR_MP_PRIVATE_STATE', 'the private fields of an instance can only be restored when its class traveled by value');
      }
      for (let i = 1; i < group.length; i += 2) (set as (o: object, n: unknown, v: unknown) => void).call(cls, obj, group[i], group[i + 1]);
    }
  },
};
