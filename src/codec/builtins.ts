/**
 * Built-in types, registered through the same `Reducer` interface users get.
 * Their own extra properties (an Error's `cause`, a RegExp's `lastIndex`, props added to a Map)
 * are kept by the codec's generic property list (`ownProps`).
 */
import { dateReducer, mapReducer, setReducer } from './plain-builtins.ts';
import { Registry, type Reducer } from './registry.ts';

type Ctor<T> = abstract new (...args: never[]) => T;
const builtins = new Registry();

function add<T extends object, A, S>(ctor: Ctor<T>, reducer: Reducer<T, A, S>): void {
  builtins.register(ctor, reducer);
}

// Restore arguments come from untrusted bytes. Check their types before handing them to a constructor:
// `new Float64Array(sparseArrayOfLength2e8)` or `String(sparseArray)` would otherwise allocate or loop
// per (absent) element, so a 16-byte payload could hang the decoder or crash it out of memory.
function expect<T>(ok: boolean, what: string, v: unknown): T {
  if (!ok) throw new TypeError(`expected ${what}`);
  return v as T;
}

add(Map, mapReducer);
add(Set, setReducer);

add(Date, dateReducer);

add(RegExp, {
  name: 'RegExp',
  subclassable: true,
  ownProps: true,
  reduce: (r) => [r.source, r.flags],
  restore: (a) => {
    const [source, flags] = expect<[string, string]>(Array.isArray(a) && typeof a[0] === 'string' && typeof a[1] === 'string', 'source and flags strings', a);
    return new RegExp(source, flags);
  },
});

for (const E of [Error, EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError, AggregateError] as const) {
  add(E as Ctor<Error>, {
    name: E.name,
    subclassable: true,
    ownProps: true,
    reduce: () => null,
    restore: () => {
      const e = E === AggregateError ? new AggregateError([]) : new (E as ErrorConstructor)();
      // The receiver's own stack and `errors` are replaced by the sender's own properties.
      delete (e as { stack?: string }).stack;
      if (E === AggregateError) delete (e as { errors?: unknown }).errors;
      return e;
    },
  });
}

const boxed: [Ctor<object>, string][] = [
  [Number, 'Number'],
  [Boolean, 'Boolean'],
  [String, 'String'],
  [BigInt as unknown as Ctor<object>, 'BigInt'],
  [Symbol as unknown as Ctor<object>, 'Symbol'],
];
for (const [C, name] of boxed) {
  const type = name.toLowerCase();
  add(C, {
    name: `Boxed${name}`,
    subclassable: true,
    ownProps:
      name === 'String'
        ? (s: object) => {
            const len = (s as unknown as string).length;
            return Reflect.ownKeys(s).filter((k) => k !== 'length' && !(typeof k === 'string' && /^\d+$/.test(k) && Number(k) < len));
          }
        : true,
    reduce: (v) => (v as { valueOf(): unknown }).valueOf(),
    restore: (p) => Object(expect(typeof p === type, `a ${type}`, p)) as object,
  });
}

// ArrayBuffer, SharedArrayBuffer, every TypedArray kind, DataView and Buffer are not reducers: the codec writes
// them natively through one buffer table (buffers.ts), so that views over one buffer keep sharing it.

add(URL, {
  name: 'URL',
  ownProps: true,
  reduce: (u) => u.href,
  restore: (href) => new URL(expect<string>(typeof href === 'string', 'a URL string', href)),
});

add(URLSearchParams, {
  name: 'URLSearchParams',
  ownProps: true,
  reduce: (u) => u.toString(),
  restore: (s) => new URLSearchParams(expect<string>(typeof s === 'string', 'a query string', s)),
});

/** The registry holding the built-in types; `defaultRegistry` inherits from it. */
export const builtinRegistry = builtins;
/** The registry `dumps`/`loads` use unless given another; `register` adds to it. */
export const defaultRegistry = new Registry(builtins);
