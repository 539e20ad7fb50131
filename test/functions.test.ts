/* Function kinds: every way to write a function, round-tripped in process and through a fresh node process. */
import { dumps, loads } from '../src/index.ts';
import { functionTable, type FunctionCase } from './harness/function-table.ts';

function declared(a: number, b = 2): number {
  return a * b;
}
const named = function fib(n: number): number {
  return n < 2 ? n : fib(n - 1) + fib(n - 2);
};
function* gen(n: number): Generator<number> {
  for (let i = 0; i < n; i++) yield i * i;
}
async function* agen(n: number): AsyncGenerator<number> {
  for (let i = 0; i < n; i++) yield await Promise.resolve(i + 1);
}
const withProps = Object.assign((x: number) => x + 1, { meta: { tag: 'v1' }, version: 3 });
const kSym = Symbol.for('mp.test.key');

// ES5-style inheritance: constructor functions with prototype objects.
function Animal(this: { name: string }, name: string) {
  this.name = name;
}
Animal.prototype.speak = function (this: { name: string }) {
  return `${this.name} makes a sound`;
};
function Dog(this: { name: string }, name: string) {
  Animal.call(this, name);
}
Dog.prototype = Object.create(Animal.prototype);
Dog.prototype.constructor = Dog;
Dog.prototype.speak = function (this: { name: string }) {
  return `${Animal.prototype.speak.call(this)} (woof)`;
};

const cases: FunctionCase[] = [
  { name: 'function declaration with default parameter', make: () => declared, check: (f) => [f(3), f(3, 4), f.name, f.length] },
  { name: 'named recursive function expression', make: () => named, check: (f) => [f(15), f.name] },
  { name: 'anonymous function expression', make: () => function (this: unknown, x: number) { return x * 3; }, check: (f) => [f(2), f.name] },
  { name: 'arrow with expression body', make: () => (a: number, b: number) => a - b, check: (f) => [f(9, 4), f.length] },
  { name: 'arrow with block body and rest parameters', make: () => (...xs: number[]) => { let s = 0; for (const x of xs) s += x; return s; }, check: (f) => f(1, 2, 3, 4) },
  { name: 'destructuring parameters', make: () => ({ a, b: [c, d] }: { a: number; b: number[] }) => a + (c ?? 0) * (d ?? 0), check: (f) => f({ a: 1, b: [2, 3] }) },
  { name: 'async function', make: () => async function twice(x: number) { await null; return x * 2; }, check: async (f) => [await f(21), f.constructor.name] },
  { name: 'async arrow', make: () => async (x: string) => `${x}!`, check: async (f) => f('hey') },
  { name: 'generator function', make: () => gen, check: (f) => [...f(5)] },
  { name: 'async generator function', make: () => agen, check: async (f) => { const out: number[] = []; for await (const v of f(4)) out.push(v); return out; } },
  { name: 'object literal shorthand method', make: () => ({ v: 5, get2() { return this.v * 2; } }), check: (o) => o.get2() },
  { name: 'method detached from its object', make: () => ({ twice(x: number) { return x * 2; } }).twice, check: (f) => [f(8), f.name] },
  { name: 'computed key method', make: () => ({ ['comp' + 'uted'](x: number) { return x + 100; } }), check: (o) => o.computed(1) },
  { name: 'symbol key method (Symbol.iterator)', make: () => ({ *[Symbol.iterator]() { yield 1; yield 2; } }), check: (o) => [...o] },
  { name: 'registered symbol key method', make: () => ({ [kSym]() { return 'sym'; } }), check: (o) => o[Symbol.for('mp.test.key')]() },
  { name: 'getter and setter', make: () => ({ _v: 1, get v() { return this._v * 10; }, set v(x: number) { this._v = x; } }), check: (o) => { o.v = 4; return o.v; } },
  { name: 'async generator method', make: () => ({ async *items() { yield 'a'; yield 'b'; } }), check: async (o) => { const r: string[] = []; for await (const x of o.items()) r.push(x); return r; } },
  {
    name: 'super through __proto__',
    make: () => ({ __proto__: { greet() { return 'hello'; } }, greet() { return `${super.greet()} world`; } }),
    check: (o) => o.greet(),
  },
  { name: 'bound function keeps target, this and arguments', make: () => function (this: { k: number }, a: number, b: number) { return this.k + a + b; }.bind({ k: 100 }, 10), check: (f) => [f(1), f.name, f.length] },
  { name: 'bound arrow keeps arguments', make: () => ((a: number, b: number) => a * b).bind(null, 6), check: (f) => f(7) },
  { name: 'class constructor', make: () => class Point { constructor(public x: number, public y: number) {} norm() { return Math.hypot(this.x, this.y); } }, check: (C) => [new C(3, 4).norm(), C.name] },
  { name: 'own properties of a function are kept', make: () => withProps, check: (f) => [f(1), f.meta, f.version] },
  { name: 'name and length are kept', make: () => { const f = (a: number, b: number) => a + b; Object.defineProperty(f, 'name', { value: 'renamed' }); return f; }, check: (f) => [f.name, f.length] },
  { name: 'strict mode is kept (this undefined)', make: () => function (this: unknown) { return this === undefined; }, check: (f) => f() },
  { name: 'new.target in a function', make: () => function Ctor(this: { made?: boolean }) { if (!new.target) return 'called'; this.made = true; return undefined; }, check: (F) => [F(), new F().made] },
  { name: 'arguments object', make: () => function () { return arguments.length; }, check: (f) => f(1, 2, 3) },
  { name: 'ES5 constructor inheritance through prototypes', make: () => Dog, check: (D) => { const d = new D('rex'); return [d.speak(), d instanceof D, Object.getPrototypeOf(D.prototype).constructor.name]; } },
  { name: 'a loaded function pickled again', make: async () => (await loads(await dumps(((k: number) => (x: number) => x * k)(6)))), check: (f) => f(7) },
  { name: 'Function constructor function', make: () => new Function('a', 'b', 'return a * b + 1'), check: (f) => f(4, 5) },
  { name: 'modern syntax: ??=, ?., ??, **, numeric separators', make: () => (o: { a?: { b?: number }; c?: number }) => { o.c ??= 1_000; return (o.a?.b ?? 2) ** 2 + o.c; }, check: (f) => [f({}), f({ a: { b: 3 }, c: 1 })] },
  { name: 'regex and template literals', make: () => (s: string) => `<${s.replace(/[aeiou]/g, (m) => m.toUpperCase())}>`, check: (f) => f('banana') },
  { name: 'labelled loops and try/finally', make: () => () => { const out: number[] = []; outer: for (let i = 0; i < 3; i++) { for (let j = 0; j < 3; j++) { if (j === 2) continue outer; try { out.push(i * 10 + j); } finally { out.push(-1); } } } return out; }, check: (f) => f() },
  { name: 'error thrown by a loaded function', make: () => (x: number) => { if (x < 0) throw new RangeError(`negative: ${x}`); return x; }, check: (f) => f(-1) },
  { name: 'built-in: Math.max by reference', make: () => Math.max, check: (f) => [f === Math.max, f(1, 5, 3)] },
  { name: 'built-in: JSON.parse by reference', make: () => JSON.parse, check: (f) => [f === JSON.parse, f('{"a":1}')] },
  { name: 'built-in: Array.prototype.map by reference', make: () => Array.prototype.map, check: (f) => f === Array.prototype.map },
  { name: 'built-in: structuredClone and Buffer.from', make: () => [structuredClone, Buffer.from], check: (fs) => [fs[0] === structuredClone, fs[1] === Buffer.from] },
  { name: 'built-in objects: Math, JSON, console by reference', make: () => ({ Math, JSON, console }), check: (o) => [o.Math === Math, o.JSON === JSON, o.console === console] },
  { name: 'built-in accessor: Map.prototype.size getter', make: () => Object.getOwnPropertyDescriptor(Map.prototype, 'size')?.get, check: (g) => g === Object.getOwnPropertyDescriptor(Map.prototype, 'size')?.get },
];

functionTable('function kinds', cases);
