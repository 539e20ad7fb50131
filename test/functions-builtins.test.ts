/* Built-in functions and objects travel by reference however they are reached: through intrinsic prototypes
 * (%TypedArray%), accessors, iterator and generator prototypes, well-known symbol methods, lazy globals. */
import { functionTable, type FunctionCase } from './harness/function-table.ts';

const typedArray = Object.getPrototypeOf(Uint8Array) as { from: Function; prototype: object };
const taProto = typedArray.prototype as Record<string, Function>;
const lengthGetter = Object.getOwnPropertyDescriptor(taProto, 'length')?.get as Function;
const arrayIter = Object.getPrototypeOf([][Symbol.iterator]()) as { next: Function };
const iterProto = Object.getPrototypeOf(arrayIter) as Record<symbol, Function>;
const genFn = Object.getPrototypeOf(function* () {}).constructor as FunctionConstructor;
const genProto = Object.getPrototypeOf(function* () {}).prototype as { next: Function; return: Function; throw: Function };
const asyncGenProto = Object.getPrototypeOf(async function* () {}).prototype as { next: Function };
const asyncFn = Object.getPrototypeOf(async function () {}).constructor as Function;

const cases: FunctionCase[] = [
  {
    name: '%TypedArray%.prototype.fill (reachable only through a prototype of a prototype)',
    make: () => taProto['fill'],
    check: (f) => [f === Object.getPrototypeOf(Uint8Array.prototype).fill, [...f.call(new Uint8Array(3), 7)]],
  },
  {
    name: '%TypedArray%.prototype.length getter and %TypedArray%.from',
    make: () => ({ get: lengthGetter, from: typedArray.from, TA: typedArray }),
    check: ({ get, from, TA }) => {
      const TAreal = Object.getPrototypeOf(Uint8Array);
      return [get === Object.getOwnPropertyDescriptor(TAreal.prototype, 'length')?.get, get.call(new Float64Array(5)), from === TAreal.from, TA === TAreal];
    },
  },
  {
    name: 'iterator prototypes: %ArrayIteratorPrototype%.next, Map, Set, String, RegExp string iterators, %IteratorPrototype%[@@iterator]',
    make: () => [arrayIter.next, Object.getPrototypeOf(new Map().entries()).next, Object.getPrototypeOf(new Set().values()).next, Object.getPrototypeOf(''[Symbol.iterator]()).next, Object.getPrototypeOf('a'.matchAll(/a/g)).next, iterProto[Symbol.iterator]],
    check: ([a, m, s, str, re, it]) => {
      const ai = [][Symbol.iterator]();
      return [
        a === Object.getPrototypeOf(ai).next,
        m === Object.getPrototypeOf(new Map().keys()).next,
        s === Object.getPrototypeOf(new Set().keys()).next,
        str === Object.getPrototypeOf(''[Symbol.iterator]()).next,
        re === Object.getPrototypeOf('b'.matchAll(/b/g)).next,
        it === Object.getPrototypeOf(Object.getPrototypeOf(ai))[Symbol.iterator],
        a.call([5, 6][Symbol.iterator]()),
      ];
    },
  },
  {
    name: 'generator and async prototypes: %GeneratorFunction%, %GeneratorPrototype%.next/return/throw, async generator next, %AsyncFunction%',
    make: () => ({ genFn, next: genProto.next, ret: genProto.return, thr: genProto.throw, anext: asyncGenProto.next, asyncFn }),
    check: (o) => {
      const gp = Object.getPrototypeOf(function* () {});
      return [o.genFn === gp.constructor, o.next === gp.prototype.next, o.ret === gp.prototype.return, o.thr === gp.prototype.throw,
        o.anext === Object.getPrototypeOf(async function* () {}).prototype.next, o.asyncFn === Object.getPrototypeOf(async function () {}).constructor,
        [...new o.genFn('yield 1; yield 2')()]];
    },
  },
  {
    name: 'well-known symbol methods: RegExp.prototype[@@replace], Symbol.prototype[@@toPrimitive], Date.prototype[@@toPrimitive]',
    make: () => [RegExp.prototype[Symbol.replace], (Symbol.prototype as unknown as Record<symbol, Function>)[Symbol.toPrimitive], (Date.prototype as unknown as Record<symbol, Function>)[Symbol.toPrimitive]],
    check: ([r, s, d]) => [r === RegExp.prototype[Symbol.replace], s === (Symbol.prototype as any)[Symbol.toPrimitive], d === (Date.prototype as any)[Symbol.toPrimitive], r.call(/a/g, 'banana', 'o')],
  },
  {
    name: 'Intl.Segmenter segment iterator next (an intrinsic that is costly to reach)',
    make: () => Object.getPrototypeOf(new Intl.Segmenter().segment('ab')[Symbol.iterator]()).next,
    check: (f) => [f === Object.getPrototypeOf(new Intl.Segmenter().segment('x')[Symbol.iterator]()).next, f.call(new Intl.Segmenter().segment('ab')[Symbol.iterator]()).value.segment],
  },
  {
    name: 'intrinsic objects as values: %TypedArray%.prototype, %ArrayIteratorPrototype%, %GeneratorPrototype%',
    make: () => ({ ta: taProto, ai: arrayIter, gp: genProto }),
    check: ({ ta, ai, gp }) => [ta === Object.getPrototypeOf(Uint8Array.prototype), ai === Object.getPrototypeOf([].values()), gp === Object.getPrototypeOf(function* () {}).prototype],
  },
  {
    name: 'a lazy global read for the first time after modulepickle loaded (DecompressionStream)',
    make: () => ({ proto: DecompressionStream.prototype, ctor: DecompressionStream }),
    check: ({ proto, ctor }) => [proto === DecompressionStream.prototype, ctor === DecompressionStream],
  },
  {
    name: 'generator function whose prototype has added methods',
    make: () => {
      function* counter(n: number) { for (let i = 0; i < n; i++) yield i; }
      (counter.prototype as unknown as { sum: () => number }).sum = function (this: Iterable<number>) { let s = 0; for (const x of this) s += x; return s; };
      return counter;
    },
    check: (g) => [g(4).sum(), Object.getPrototypeOf(g.prototype) === Object.getPrototypeOf(function* () {}).prototype],
  },
  {
    name: 'accessor functions: %ThrowTypeError%, Object.prototype.__proto__ getter and setter, Map.prototype.size getter',
    make: () => [Object.getOwnPropertyDescriptor(Function.prototype, 'caller')?.get, Object.getOwnPropertyDescriptor(Object.prototype, '__proto__')?.get, Object.getOwnPropertyDescriptor(Object.prototype, '__proto__')?.set, Object.getOwnPropertyDescriptor(Map.prototype, 'size')?.get],
    check: ([t, g, s, m]) => [
      t === Object.getOwnPropertyDescriptor(Function.prototype, 'caller')?.get,
      g === Object.getOwnPropertyDescriptor(Object.prototype, '__proto__')?.get,
      s === Object.getOwnPropertyDescriptor(Object.prototype, '__proto__')?.set,
      m.call(new Map([[1, 1]])),
    ],
  },
  {
    name: 'async iteration intrinsics: %AsyncGeneratorPrototype% return/throw, %AsyncIteratorPrototype%[@@asyncIterator]',
    make: () => {
      const agp = Object.getPrototypeOf(async function* () {}).prototype;
      return [agp.return, agp.throw, Object.getPrototypeOf(agp)[Symbol.asyncIterator], agp];
    },
    check: ([r, t, ai, agp]) => {
      const a = Object.getPrototypeOf(async function* () {}).prototype;
      return [r === a.return, t === a.throw, ai === Object.getPrototypeOf(a)[Symbol.asyncIterator], agp === a];
    },
  },
  {
    name: 'more prototype members: Array.prototype[@@unscopables], %TypedArray%.prototype[@@toStringTag] getter, Intl.Collator compare getter, RegExp.$1 getter',
    make: () => [Array.prototype[Symbol.unscopables], Object.getOwnPropertyDescriptor(taProto, Symbol.toStringTag)?.get, Object.getOwnPropertyDescriptor(Intl.Collator.prototype, 'compare')?.get, Object.getOwnPropertyDescriptor(RegExp, '$1')?.get, Object.getOwnPropertyDescriptor(Symbol.prototype, 'description')?.get],
    check: (a) => {
      const ta = Object.getPrototypeOf(Uint8Array.prototype);
      const b = [Array.prototype[Symbol.unscopables], Object.getOwnPropertyDescriptor(ta, Symbol.toStringTag)?.get, Object.getOwnPropertyDescriptor(Intl.Collator.prototype, 'compare')?.get, Object.getOwnPropertyDescriptor(RegExp, '$1')?.get, Object.getOwnPropertyDescriptor(Symbol.prototype, 'description')?.get];
      return a.map((x: unknown, i: number) => x === b[i]);
    },
  },
  {
    name: "Node's web globals: Response.prototype.json, URL href getter, TextEncoder encode, structuredClone, AbortSignal aborted getter",
    make: () => [Response.prototype.json, Object.getOwnPropertyDescriptor(URL.prototype, 'href')?.get, TextEncoder.prototype.encode, structuredClone, Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'aborted')?.get],
    check: (a) => {
      const b = [Response.prototype.json, Object.getOwnPropertyDescriptor(URL.prototype, 'href')?.get, TextEncoder.prototype.encode, structuredClone, Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'aborted')?.get];
      return a.map((x: unknown, i: number) => x === b[i]);
    },
  },
  {
    name: "iterators of Node's JavaScript built-ins: Headers and FormData entries next, ReadableStream async iterator prototype",
    make: () => [Object.getPrototypeOf(new Headers().entries()).next, Object.getPrototypeOf(new FormData().entries()).next, Object.getPrototypeOf(new ReadableStream().values())],
    check: ([h, fd, rs]) => [
      h === Object.getPrototypeOf(new Headers().entries()).next,
      fd === Object.getPrototypeOf(new FormData().entries()).next,
      rs === Object.getPrototypeOf(new ReadableStream().values()),
      h.call(new Headers({ a: '1' }).entries()).value,
    ],
  },
  {
    name: 'members keyed by a registered symbol (Symbol.for(nodejs.util.inspect.custom)) of URLSearchParams and Buffer prototypes',
    make: () => [Reflect.get(URLSearchParams.prototype, Symbol.for('nodejs.util.inspect.custom')), Reflect.get(Buffer.prototype, Symbol.for('nodejs.util.inspect.custom'))],
    check: ([u, b]) => [u === Reflect.get(URLSearchParams.prototype, Symbol.for('nodejs.util.inspect.custom')), b === Reflect.get(Buffer.prototype, Symbol.for('nodejs.util.inspect.custom'))],
  },
  {
    // Node >= 22 only (iterator helpers); on Node 20 both are null.
    name: 'iterator helper prototypes: %IteratorHelperPrototype%.next, %WrapForValidIteratorPrototype%.next',
    make: () => {
      const map = Reflect.get([].values(), 'map') as ((f: unknown) => object) | undefined;
      const from = (Reflect.get(globalThis, 'Iterator') as { from?: (o: object) => object } | undefined)?.from;
      return [map ? Reflect.get(Object.getPrototypeOf(map.call([1].values(), String)), 'next') : null, from ? Reflect.get(Object.getPrototypeOf(from({ next: () => ({ done: true }) })), 'next') : null];
    },
    check: ([helper, wrap]) => {
      const map = Reflect.get([].values(), 'map') as ((f: unknown) => object) | undefined;
      const from = (Reflect.get(globalThis, 'Iterator') as { from?: (o: object) => object } | undefined)?.from;
      return [
        helper === (map ? Reflect.get(Object.getPrototypeOf(map.call([2].values(), String)), 'next') : null),
        wrap === (from ? Reflect.get(Object.getPrototypeOf(from({ next: () => ({ done: true }) })), 'next') : null),
      ];
    },
  },
];

functionTable('built-ins by reference', cases);
