/**
 * Instances whose state the codec cannot copy from outside: private fields (`#x`), which JS cannot read or create
 * from outside a class, and arrow-function fields (`onClick = () => this.x`), whose `this` V8 does not expose.
 * The sender reads private fields with the inspector; the class travels by value with injected hooks (a constructor
 * token that skips the constructor body after the fields are initialized, and a static setter for private fields);
 * the receiver creates the instance with `new C(token)`, so field initializers recreate the arrow fields bound to
 * the new instance, then assigns the private fields. Public own fields travel as usual.
 */
import { DecodeError, EncodeError } from '../errors.ts';
import type { Reducer } from '../codec/registry.ts';
import { analyzeSource, type PrivateStateInfo } from './free-variables.ts';
import { readPrivateMembers } from './inspector.ts';
import { travelsByReference } from './encode-function.ts';

const setPrivate = Symbol.for('modulepickle.setPrivate');
const tokenKey = Symbol.for('modulepickle.construct');
if (!(tokenKey in globalThis)) Object.defineProperty(globalThis, tokenKey, { value: Object.freeze([]) });

const hookCache = new WeakMap<Function, PrivateStateInfo | null>();

/** Private and arrow fields a class declares (null for classes without any, and for non-class functions). */
function classHooks(ctor: Function): PrivateStateInfo | null {
  let h = hookCache.get(ctor);
  if (h === undefined) {
    let text = '';
    try {
      text = Function.prototype.toString.call(ctor);
    } catch {
      text = '';
    }
    h = text.startsWith('class') && (text.includes('#') || text.includes('=>')) ? (analyzeSource(text)?.privateState ?? null) : null;
    hookCache.set(ctor, h);
  }
  return h;
}

/** Classes of an object's prototype chain that declare private or arrow fields (most derived first). */
function hookedClasses(value: object): { cls: Function; hooks: PrivateStateInfo }[] {
  const out: { cls: Function; hooks: PrivateStateInfo }[] = [];
  for (let p = Object.getPrototypeOf(value) as object | null; p !== null && p !== Object.prototype; p = Object.getPrototypeOf(p) as object | null) {
    const d = Object.getOwnPropertyDescriptor(p, 'constructor');
    const ctor = d && 'value' in d ? d.value : undefined;
    if (typeof ctor !== 'function' || ctor.prototype !== p) continue;
    const hooks = classHooks(ctor);
    if (hooks) out.push({ cls: ctor, hooks });
  }
  return out;
}

/** Own properties that are arrow fields of the instance's classes (recreated by `new C(token)`, not copied). */
function arrowFieldKeys(value: object, classes: readonly { hooks: PrivateStateInfo }[]): Set<string> {
  const keys = new Set<string>();
  for (const { hooks } of classes) {
    for (const k of hooks.arrowFields) if (typeof Object.getOwnPropertyDescriptor(value, k)?.value === 'function') keys.add(k);
  }
  return keys;
}

/** Whether an object needs the construct-through-its-class reducer. */
export function hasPrivateState(value: object): boolean {
  if (typeof value !== 'object') return false;
  const classes = hookedClasses(value);
  return classes.some((c) => c.hooks.fields.length > 0) || arrowFieldKeys(value, classes).size > 0;
}

interface InstanceArgs {
  readonly cls: Function;
}

/** Per declaring class: `[class, name, value, name, value, ...]` groups. */
type InstanceState = readonly (readonly unknown[])[];

/** Reducer for instances whose classes declare private fields or arrow fields. */
export const privateInstanceReducer: Reducer<object, InstanceArgs, InstanceState> = {
  name: 'mp.privateInstance',
  code: true,
  ownProps: (value) => {
    const skip = arrowFieldKeys(value, hookedClasses(value));
    return Reflect.ownKeys(value).filter((k) => typeof k !== 'string' || !skip.has(k));
  },
  reduce(value, ctx) {
    const proto = Object.getPrototypeOf(value) as { constructor?: unknown };
    const cls = proto.constructor;
    if (typeof cls !== 'function' || (cls as { prototype?: unknown }).prototype !== proto) {
      throw new EncodeError('ERR_MP_PRIVATE_STATE', 'an object with private or arrow fields whose prototype is not its class prototype cannot be pickled', ctx.path() as never);
    }
    for (const { cls: c } of hookedClasses(value)) {
      if (travelsByReference(c, ctx)) {
        throw new EncodeError('ERR_MP_PRIVATE_STATE', `an instance of ${c.name || 'a class'} has #private or arrow-function fields, but the class travels by reference, so the receiver cannot recreate them; pass { byValue: true } to pickle local classes by value, or implement [reduceSymbol]`, ctx.path() as never);
      }
    }
    return { cls };
  },
  getState(value) {
    const classes = hookedClasses(value).filter((c) => c.hooks.fields.length > 0);
    if (!classes.length) return [];
    const members = new Map(readPrivateMembers(value));
    return classes.map(({ cls, hooks }) => {
      const group: unknown[] = [cls];
      for (const name of hooks.fields) if (members.has(name)) group.push(name, members.get(name));
      return group;
    });
  },
  restore(args) {
    if (typeof args?.cls !== 'function') throw new DecodeError('ERR_MP_BAD_FUNCTION', 'malformed private instance in payload');
    try {
      return Reflect.construct(args.cls, [(globalThis as Record<symbol, unknown>)[tokenKey]]) as object;
    } catch (cause) {
      throw new DecodeError('ERR_MP_PRIVATE_STATE', `cannot create an instance of ${args.cls.name || 'a class'}: ${(cause as Error)?.message}`, undefined, { cause });
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
