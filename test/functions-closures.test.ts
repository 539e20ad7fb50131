/* Closures: captures of every kind, scopes several levels deep, sharing, recursion and cycles. */
import { functionTable, type FunctionCase } from './harness/function-table.ts';

// Module-level state used by two by-value functions: one binding after load.
let hits = 0;
function hit(): number {
  return ++hits;
}
function readHits(): number {
  return hits;
}
const moduleConst = { base: 40 };
var moduleVar = 'var-state';

function makeCounter(start: number) {
  let count = start;
  const log: number[] = [];
  return {
    inc: () => {
      log.push(count);
      return ++count;
    },
    get: () => [count, log.length],
  };
}

function outerLevels(a: number) {
  const b = a * 2;
  return function middle(c: number) {
    const d = c + 1;
    return (e: number) => a + b + c + d + e;
  };
}

const isEven = (n: number): boolean => (n === 0 ? true : isOdd(n - 1));
const isOdd = (n: number): boolean => (n === 0 ? false : isEven(n - 1));
const shared = { n: 0 };
const addShared = (k: number) => (shared.n += k);
const readShared = () => shared.n;

const cases: FunctionCase[] = [
  { name: 'capture const', make: () => { const k = 7; return (x: number) => x * k; }, check: (f) => f(6) },
  { name: 'capture let (mutated by the function)', make: () => { let n = 0; return () => ++n; }, check: (f) => [f(), f(), f()] },
  { name: 'capture var', make: () => { var v = 'x'; return () => (v += 'y'); }, check: (f) => [f(), f()] },
  { name: 'captures several scopes deep', make: () => outerLevels(1)(10), check: (f) => f(100) },
  { name: 'loop closures each with their own binding (let)', make: () => { const fs: (() => number)[] = []; for (let i = 0; i < 4; i++) fs.push(() => i * i); return fs; }, check: (fs) => fs.map((f: () => number) => f()) },
  { name: 'loop closures over var share one binding', make: () => { const fs: (() => number)[] = []; for (var i = 0; i < 3; i++) fs.push(() => i); return fs; }, check: (fs) => fs.map((f: () => number) => f()) },
  { name: 'two closures of one call share their let', make: () => makeCounter(5), check: (c) => [c.inc(), c.inc(), c.get()] },
  { name: 'loop closures with equal state keep their own binding', make: () => { const fs: (() => number)[] = []; for (let i = 0; i < 3; i++) { let hits = 0; fs.push(() => ++hits); } return fs; }, check: (fs) => [fs[0](), fs[0](), fs[1](), fs[2]()] },
  { name: 'closures of two calls stay separate', make: () => [makeCounter(1), makeCounter(100)], check: ([a, b]) => [a.inc(), b.inc(), a.get(), b.get()] },
  { name: 'module-level let shared by two by-value functions', make: () => ({ hit, readHits }), check: (o) => [o.hit(), o.hit(), o.readHits()] },
  { name: 'module-level const object and var', make: () => () => moduleConst.base + moduleVar.length, check: (f) => f() },
  { name: 'object captured by two functions loads as one', make: () => ({ addShared, readShared }), check: (o) => [o.addShared(2), o.addShared(3), o.readShared()] },
  { name: 'capture Map, Set and Date', make: () => { const m = new Map([['a', 1]]); const s = new Set([1, 2]); const d = new Date(86_400_000); return () => [m.get('a'), s.size, d.toISOString()]; }, check: (f) => f() },
  { name: 'capture RegExp, typed array, bigint', make: () => { const r = /ab+c/gi; const t = new Float64Array([1.5, 2.5]); const big = 2n ** 70n; return () => [r.flags, t[1], String(big)]; }, check: (f) => f() },
  { name: 'capture -0, NaN, undefined, null, symbol', make: () => { const z = -0, nan = NaN, u = undefined, n = null, s = Symbol.for('mp.sym'); return () => [Object.is(z, -0), Number.isNaN(nan), u, n, Symbol.keyFor(s)]; }, check: (f) => f() },
  { name: 'capture a function (by value)', make: () => { const sq = (x: number) => x * x; return (x: number) => sq(x) + 1; }, check: (f) => f(9) },
  { name: 'capture a class', make: () => { class V { constructor(readonly v: number) {} twice() { return this.v * 2; } } return (x: number) => new V(x).twice(); }, check: (f) => f(21) },
  { name: 'recursion through a captured binding (arrow)', make: () => { const fact = (n: number): number => (n <= 1 ? 1 : n * fact(n - 1)); return fact; }, check: (f) => f(10) },
  { name: 'mutual recursion', make: () => isEven, check: (f) => [f(10), f(7)] },
  { name: 'function reachable from its own captures', make: () => { const reg: Record<string, unknown> = {}; const f = () => reg['self'] === f; reg['self'] = f; return f; }, check: (f) => f() },
  { name: 'cycle through an object and a function', make: () => { const o: { fn?: () => unknown; n: number } = { n: 3 }; o.fn = () => o.n * 2; return o; }, check: (o) => [o.fn(), o.fn.length] },
  { name: 'closure over a parameter and a destructured variable', make: () => ((p: number, { q }: { q: number }) => () => p * q)(6, { q: 7 }), check: (f) => f() },
  { name: 'closure over a catch parameter', make: () => { try { throw new Error('caught'); } catch (err) { return () => (err as Error).message; } }, check: (f) => f() },
  { name: 'closure in a block scope', make: () => { let f: () => string; { const inner = 'block'; f = () => inner.toUpperCase(); } return f; }, check: (f) => f() },
  { name: 'IIFE-created closures share state (with an object alongside)', make: () => (() => { let total = 0; const seen: number[] = []; return [(x: number) => { seen.push(x); return (total += x); }, () => [total, seen]]; })(), check: ([add, get]) => [add(5), add(6), get()] },
  { name: 'captured primitive is a snapshot of the value at dumps time', make: () => { let v = 1; const f = () => v; v = 2; return f; }, check: (f) => f() },
  { name: 'captured getter object keeps accessors', make: () => { const cfg = { get url() { return 'http://x'; } }; return () => cfg.url; }, check: (f) => f() },
  { name: 'closure capturing an array of closures', make: () => { const ops = [(x: number) => x + 1, (x: number) => x * 10]; return (x: number) => ops.reduce((a, op) => op(a), x); }, check: (f) => f(4) },
  { name: 'closure using globals (console, Math) resolves them on the receiver', make: () => (x: number) => Math.round(x) + (typeof console.log === 'function' ? 1 : 0), check: (f) => f(2.6) },
  { name: 'capture an Error and an ArrayBuffer', make: () => { const err = new TypeError('bad input'); const buf = new Uint8Array([1, 2, 3]).buffer; return () => [err instanceof TypeError, err.message, new Uint8Array(buf)[2]]; }, check: (f) => f() },
  { name: 'capture nested data with shared references', make: () => { const leaf = { v: 1 }; const tree = { a: leaf, b: [leaf, { leaf }] }; return () => tree.a === tree.b[0] && tree.a === (tree.b[1] as { leaf: unknown }).leaf; }, check: (f) => f() },
  { name: 'capture a bound function and a generator object factory', make: () => { const mul = ((a: number, b: number) => a * b).bind(null, 3); function* count() { yield 1; yield 2; } return () => [mul(4), [...count()]]; }, check: (f) => f() },
  { name: 'closure captured inside a Map value', make: () => { const k = 10; return new Map([['fn', (x: number) => x + k]]); }, check: (m) => m.get('fn')(5) },
  { name: 'default parameter referencing a captured variable', make: () => { const fallback = 'dflt'; return (s: string = fallback) => s.toUpperCase(); }, check: (f) => [f(), f('x')] },
  { name: 'async closure awaiting a captured promise-returning function', make: () => { const delay = (ms: number) => new Promise((r) => setTimeout(r, ms)); let n = 0; return async () => { await delay(1); return ++n; }; }, check: async (f) => [await f(), await f()] },
  { name: 'only used variables are captured', make: () => { const big = new Array(10000).fill('x'); const small = 3; const f = () => small; void big; return f; }, check: (f) => f() },
];

functionTable('closures', cases);
