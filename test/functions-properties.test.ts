/* Own properties of functions and classes keep their attributes (value or accessor, writable, enumerable,
 * configurable), deletions and extensibility, in process and through a fresh node process. */
import { functionTable, type FunctionCase } from './harness/function-table.ts';

/** Every own property of `o` with its attributes, in key order (functions by name, objects by their keys). */
function shapeOf(o: object): unknown[] {
  return Reflect.ownKeys(o).map((k) => {
    const d = Object.getOwnPropertyDescriptor(o, k) as PropertyDescriptor;
    const show = (v: unknown): unknown => (typeof v === 'function' ? `fn ${v.name}` : typeof v === 'object' && v !== null ? `{${Reflect.ownKeys(v).map(String).join(',')}}` : v);
    const value = 'value' in d ? show(d.value) : `get ${show(d.get)} set ${show(d.set)}`;
    return [String(k), value, d.writable, d.enumerable, d.configurable];
  });
}
const full = (f: object): unknown[] => [shapeOf(f), Object.isExtensible(f)];
const tag = Symbol.for('mp.test.tag');

const cases: FunctionCase[] = [
  {
    name: 'length redefined with defineProperty',
    make: () => {
      const f = (a: number, b: number) => a + b;
      Object.defineProperty(f, 'length', { value: 7 });
      return f;
    },
    check: (f) => [f.length, f(1, 2), full(f)],
  },
  {
    name: 'name as a getter, length writable and enumerable',
    make: () => {
      const f = function (x: number) { return x; };
      Object.defineProperty(f, 'name', { get: () => 'dynamic', configurable: true });
      Object.defineProperty(f, 'length', { value: 3, writable: true, enumerable: true });
      return f;
    },
    check: (f) => [f.name, f.length, full(f)],
  },
  {
    name: 'deleted name and length stay deleted',
    make: () => {
      const f = function named(a: number) { return a; };
      delete (f as { name?: string }).name;
      delete (f as { length?: number }).length;
      return f;
    },
    check: (f) => [Object.hasOwn(f, 'name'), Object.hasOwn(f, 'length'), f.name, f(4), full(f)],
  },
  {
    name: 'non-writable, non-enumerable added property and a frozen function',
    make: () => {
      const f = (x: number) => x * 2;
      Object.defineProperty(f, 'secret', { value: 42, enumerable: false });
      (f as unknown as { tag: string }).tag = 't';
      return Object.freeze(f);
    },
    check: (f) => [f.secret, f.tag, Object.isFrozen(f), full(f)],
  },
  {
    name: 'prototype given to an arrow; read-only prototype of a function',
    make: () => {
      const a = () => 1;
      (a as unknown as { prototype: object }).prototype = { z: 1 };
      function F(this: { v: number }) { this.v = 1; }
      Object.defineProperty(F, 'prototype', { writable: false });
      return { a, F };
    },
    check: ({ a, F }) => [a.prototype.z, full(a), full(F), new F().v, shapeOf(F.prototype)],
  },
  {
    name: 'function prototype with a non-default constructor attribute',
    make: () => {
      function G() {}
      Object.defineProperty(G.prototype, 'constructor', { enumerable: true });
      return G;
    },
    check: (G) => [shapeOf(G.prototype), new G() instanceof G],
  },
  {
    name: 'class with redefined name and length, deleted static method',
    make: () => {
      class K {
        constructor(_a: number) {}
        static gone() { return 1; }
        static kept() { return 2; }
      }
      Object.defineProperty(K, 'name', { value: 'Renamed' });
      Object.defineProperty(K, 'length', { value: 5, enumerable: true });
      delete (K as { gone?: unknown }).gone;
      return K;
    },
    check: (K) => [K.name, K.length, 'gone' in K, K.kept(), full(K)],
  },
  {
    name: 'frozen class keeps its static method attributes',
    make: () => Object.freeze(class Frozen { static m() { return 'm'; } static v = 1; }),
    check: (K) => [K.m(), Object.isFrozen(K), full(K)],
  },
  {
    name: 'frozen class prototype keeps its attributes and extensibility',
    make: () => {
      class P { m() { return 'pm'; } get g() { return 1; } }
      Object.freeze(P.prototype);
      return P;
    },
    check: (P) => [new P().m(), Object.isFrozen(P.prototype), full(P.prototype)],
  },
  {
    name: 'class prototype member deleted, enumerable method, replaced constructor',
    make: () => {
      class Q { a() { return 'a'; } b() { return 'b'; } }
      delete (Q.prototype as { a?: unknown }).a;
      Object.defineProperty(Q.prototype, 'b', { enumerable: true });
      Object.defineProperty(Q.prototype, 'constructor', { value: Object, writable: false });
      return Q;
    },
    check: (Q) => [new Q().b(), 'a' in Q.prototype, Q.prototype.constructor === Object, full(Q.prototype)],
  },
  {
    name: 'async function name redefined writable and enumerable',
    make: () => {
      const f = async function af(a: number) { return a; };
      Object.defineProperty(f, 'name', { value: 'renamed', writable: true, enumerable: true });
      return f;
    },
    check: async (f) => [f.name, await f(3), full(f)],
  },
  {
    name: 'generator length made non-configurable; method name set to a number',
    make: () => {
      function* g(a: number) { yield a; }
      Object.defineProperty(g, 'length', { value: 9, configurable: false });
      const o = { m(a: number) { return a + 1; } };
      Object.defineProperty(o.m, 'name', { value: 42 });
      return { g, m: o.m };
    },
    check: ({ g, m }) => [g.length, [...g(2)], full(g), m.name, m(1), full(m)],
  },
  {
    name: 'symbol-keyed and accessor own properties; sealed and non-extensible functions',
    make: () => {
      const f = (x: number) => x;
      Object.defineProperty(f, tag, { value: 's', writable: true });
      Object.defineProperty(f, 'acc', { get: () => 'got', enumerable: true });
      const sealed = Object.seal(function s() {});
      const closed = Object.preventExtensions(function t() {});
      return { f, sealed, closed };
    },
    check: ({ f, sealed, closed }) => [f[tag], f.acc, full(f), full(sealed), Object.isSealed(sealed), full(closed)],
  },
  {
    name: 'captured function with redefined name and length (non-configurable name)',
    make: () => {
      const inner = (a: number, b: number) => a * b;
      Object.defineProperty(inner, 'length', { value: 0, writable: true });
      Object.defineProperty(inner, 'name', { value: 'mul', enumerable: true, configurable: false });
      return () => inner;
    },
    check: (f) => [f().name, f().length, f()(2, 3), full(f())],
  },
  {
    name: 'bound function with redefined name, deleted length and an added property',
    make: () => {
      const b = function (this: { k: number }, x: number) { return this.k + x; }.bind({ k: 1 });
      Object.defineProperty(b, 'name', { value: 'bb', writable: true, enumerable: true });
      delete (b as { length?: number }).length;
      Object.defineProperty(b, 'extra', { value: 5 });
      return b;
    },
    check: (f) => [f(2), f.name, Object.hasOwn(f, 'length'), f.extra, full(f)],
  },
  {
    name: 'bound function keeps its default name and length',
    make: () => function add(a: number, b: number, c: number) { return a + b + c; }.bind(null, 1),
    check: (f) => [f(2, 3), f.name, f.length, full(f)],
  },
  {
    name: 'class body methods keep their own properties: redefined name and length, an added key, a frozen getter',
    make: () => {
      class M {
        static s(_a: number) { return 's'; }
        m(_a: number, _b: number) { return 'm'; }
        get g() { return 'g'; }
        [Symbol.iterator]() { return [1][Symbol.iterator](); }
      }
      Object.defineProperty(M.s, 'name', { value: 'renamedStatic' });
      Object.defineProperty(M, 's', { enumerable: true, writable: false });
      Object.defineProperty(M.prototype.m, 'length', { value: 9, writable: true });
      (M.prototype.m as unknown as { cache: number }).cache = 1;
      Object.freeze(Object.getOwnPropertyDescriptor(M.prototype, 'g')?.get);
      delete (M.prototype[Symbol.iterator] as { name?: string }).name;
      return M;
    },
    check: (M) => {
      const g = Object.getOwnPropertyDescriptor(M.prototype, 'g')?.get as Function;
      return [M.s(), full(M), full(M.s), new M().m(), full(M.prototype.m), new M().g, full(g), Object.isFrozen(g), full(M.prototype[Symbol.iterator]), [...new M()]];
    },
  },
  {
    name: 'class body methods left as defined keep their own properties (nothing extra travels)',
    make: () => class D { static s(a: number, b = 2) { return a + b; } m(...r: number[]) { return r.length; } get g() { return 1; } set g(_v: number) {} *gen(_x: number) { yield 1; } [Symbol.iterator]() { return [2][Symbol.iterator](); } },
    check: (D) => {
      const d = Object.getOwnPropertyDescriptor(D.prototype, 'g') as PropertyDescriptor;
      return [full(D.s), full(D.prototype.m), full(d.get as Function), full(d.set as Function), full(D.prototype.gen), full(D.prototype[Symbol.iterator]), D.s(1), [...new D()]];
    },
  },
  {
    name: 'a function, an arrow and a class whose [[Prototype]] was changed with Object.setPrototypeOf',
    make: () => {
      const f = function () { return 1; };
      Object.setPrototypeOf(f, { tagged: true, __proto__: Function.prototype });
      const bare = Object.setPrototypeOf(() => 2, null);
      class Base { static hello() { return 'hi'; } }
      class K {}
      Object.setPrototypeOf(K, Base);
      const gen = Object.setPrototypeOf(function* () { yield 3; }, Function.prototype);
      return { f, bare, K, gen };
    },
    check: ({ f, bare, K, gen }) => [f(), f.tagged, typeof f.call, Object.getPrototypeOf(bare) === null, Reflect.apply(bare, null, []), K.hello(), Object.getPrototypeOf(gen) === Function.prototype, [...gen()]],
  },
  {
    name: 'a static arrow field keeps a redefined length; an untouched one stays as its initializer made it',
    make: () => {
      class F { static changed = (a: number, b: number) => a + b; static same = (a: number) => a; }
      Object.defineProperty(F.changed, 'length', { value: 5 });
      return F;
    },
    check: (F) => [F.changed(1, 2), full(F.changed), F.same(3), full(F.same), full(F)],
  },
];

functionTable('function and class own properties', cases);
