/* Classes by value and their instances; class identity across payloads (tracker). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventEmitter } from 'node:events';
import { Packr, Unpackr } from 'msgpackr';
import { dumps } from '../src/index.ts';
import { decodeInChild, functionTable, type FunctionCase } from './harness/function-table.ts';

class Shape {
  static created = 0;
  static readonly unit = 'cm';
  static {
    Shape.created = 0;
  }
  label = 'shape';
  #id: number;
  constructor(id: number) {
    this.#id = id;
    Shape.created++;
  }
  get id(): number {
    return this.#id;
  }
  #secret(): string {
    return `s${this.#id}`;
  }
  reveal(): string {
    return this.#secret();
  }
  area(): number {
    return 0;
  }
  describe(): string {
    return `${this.label}#${this.#id}:${this.area()}`;
  }
}
class Square extends Shape {
  constructor(id: number, public side: number) {
    super(id);
    this.label = 'square';
  }
  override area(): number {
    return this.side ** 2;
  }
  override describe(): string {
    return `[${super.describe()}]`;
  }
}
class AppError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
    this.name = 'AppError';
  }
}
class Registry extends Map<string, number> {
  total(): number {
    let t = 0;
    for (const v of this.values()) t += v;
    return t;
  }
}
class Stack extends Array<number> {
  top(): number | undefined {
    return this[this.length - 1];
  }
}
class Bus extends EventEmitter {
  fire(x: number): number {
    let got = 0;
    this.once('x', (v: number) => (got = v));
    this.emit('x', x);
    return got;
  }
}
class FastPackr extends Packr {
  roundtrip(v: unknown): unknown {
    return this.unpack(this.pack(v));
  }
}
class Target {
  made: string;
  constructor() {
    this.made = new.target.name;
  }
}
class Sub extends Target {}
class Late {
  v = 1;
}
(Late as unknown as { factor: number }).factor = 10;
(Late.prototype as unknown as { times: (this: Late) => number }).times = function () {
  return this.v * (Late as unknown as { factor: number }).factor;
};
const kName = Symbol.for('mp.className');
class WithComputed {
  [kName](): string {
    return `computed:${String(kName).length}`;
  }
  static [Symbol.hasInstance](x: unknown): boolean {
    return typeof x === 'object' && x !== null && 'duck' in x;
  }
}
class Button {
  label = 'ok';
  clicks = 0;
  onClick = (): string => {
    this.clicks++;
    return this.label;
  };
}
class IconButton extends Button {
  icon = 'star';
  render = (): string => `${this.icon}:${this.onClick()}`;
}
class Counter {
  #n = 0;
  #log: string[] = [];
  tick(): number {
    this.#log.push('t');
    return ++this.#n;
  }
  get value(): string {
    return `${this.#n}:${this.#log.join('')}`;
  }
}
class StaticCounter {
  static #n = 0;
  static inc(): number {
    return ++StaticCounter.#n;
  }
  static get n(): number {
    return StaticCounter.#n;
  }
}
StaticCounter.inc();
class StaticRegistry {
  static #items = new Map<string, unknown>();
  static #self: unknown = null;
  static add(k: string, v: unknown): number {
    StaticRegistry.#items.set(k, v);
    StaticRegistry.#self = StaticRegistry;
    return StaticRegistry.#items.size;
  }
  static entries(): unknown[] {
    return [[...StaticRegistry.#items.keys()], StaticRegistry.#self === StaticRegistry];
  }
}
StaticRegistry.add('a', { deep: [1] });
StaticRegistry.add('b', 2);
class StaticHook {
  static #hook: (() => number) | null = null;
  static set(g: () => number): void {
    StaticHook.#hook = g;
  }
  static run(): number | undefined {
    return StaticHook.#hook?.();
  }
}
{
  let k = 40;
  StaticHook.set(() => ++k);
}
class StaticBlock {
  static #v = 0;
  static {
    StaticBlock.#v = 5;
  }
  static get #twice(): number {
    return StaticBlock.#v * 2;
  }
  static #plusOne(): number {
    return StaticBlock.#v + 1;
  }
  static bump(): number[] {
    StaticBlock.#v += 1;
    return [StaticBlock.#twice, StaticBlock.#plusOne()];
  }
}
StaticBlock.bump();
class BaseStatic {
  static #base = 'base0';
  static setBase(v: string): void {
    BaseStatic.#base = v;
  }
  static get base(): string {
    return BaseStatic.#base;
  }
}
class DerivedStatic extends BaseStatic {
  static #own = 0;
  #inst = 'i0';
  static bump(): number {
    return (DerivedStatic.#own += 10);
  }
  static get own(): number {
    return DerivedStatic.#own;
  }
  setInst(v: string): this {
    this.#inst = v;
    return this;
  }
  get inst(): string {
    return this.#inst;
  }
}
BaseStatic.setBase('base1');
DerivedStatic.bump();
function makeLocalClass(base: number) {
  return class Local {
    value(): number {
      return base * 2;
    }
  };
}

const cases: FunctionCase[] = [
  { name: 'class with fields, #private field and method, accessors', make: () => Shape, check: (C) => { const s = new C(7); return [s.id, s.reveal(), s.describe(), s.label]; } },
  { name: 'static members and static block', make: () => Shape, check: (C) => [C.unit, typeof C.created] },
  { name: 'extends a user class with super calls', make: () => Square, check: (C) => { const s = new C(2, 3); return [s.area(), s.describe(), s.id, s instanceof C]; } },
  { name: 'extends Error', make: () => AppError, check: (C) => { const e = new C('nope', 404); return [e instanceof Error, e.message, e.status, e.name]; } },
  { name: 'extends Map', make: () => Registry, check: (C) => { const r = new C([['a', 1], ['b', 2]]); return [r.total(), r instanceof Map, r.size]; } },
  { name: 'extends Array', make: () => Stack, check: (C) => { const s = new C(); s.push(1, 2, 3); return [s.top(), s.length, Array.isArray(s)]; } },
  { name: 'extends a builtin module class (EventEmitter)', make: () => Bus, check: (C) => new C().fire(42) },
  { name: 'extends an installed package class (msgpackr Packr)', make: () => FastPackr, check: (C) => new C().roundtrip({ a: [1, 2] }) },
  { name: 'new.target', make: () => Sub, check: (C) => new C().made },
  { name: 'properties added to the class and prototype after the declaration', make: () => Late, check: (C) => [new C().times(), C.factor] },
  { name: 'computed and symbol class members', make: () => WithComputed, check: (C) => [new C()[Symbol.for('mp.className')](), ({ duck: 1 }) instanceof C] },
  { name: 'class defined inside a function (captures)', make: () => makeLocalClass(21), check: (C) => new C().value() },
  { name: 'instance keeps prototype, own fields and instanceof', make: () => new Square(1, 5), check: (s) => [s.area(), s.side, s.label, s.constructor.name, Object.getPrototypeOf(Object.getPrototypeOf(s)).constructor.name] },
  { name: 'instance keeps its #private fields', make: () => new Square(9, 2), check: (s) => [s.describe(), s.reveal(), s.id] },
  { name: 'instance with #private fields changed after construction', make: () => { const c = new Counter(); c.tick(); c.tick(); return c; }, check: (c) => [c.tick(), c.value] },
  { name: 'instance with arrow-function fields bound to it', make: () => { const b = new Button(); b.label = 'changed'; b.onClick(); return b; }, check: (b) => [b.onClick(), b.clicks, b.label] },
  { name: 'subclass instance with arrow fields at two levels', make: () => { const b = new IconButton(); b.icon = 'heart'; return b; }, check: (b) => [b.render(), b.clicks, b instanceof Button] },
  { name: 'instances of one class share the class after load', make: () => [new Square(1, 2), new Square(2, 3)], check: ([a, b]) => [a.constructor === b.constructor, a.area() + b.area()] },
  { name: 'instance of a class extending Error', make: () => new AppError('bad', 500), check: (e) => [e instanceof Error, e.message, e.status] },
  { name: 'instance of a Map subclass', make: () => new Registry([['x', 5]]), check: (r) => [r.total(), r.get('x')] },
  { name: 'instance of a builtin module class (EventEmitter)', make: () => new EventEmitter(), check: (e) => [e instanceof EventEmitter, typeof e.on] },
  { name: 'instance of an installed package class (by reference)', make: () => new Unpackr(), check: (p) => [p instanceof Unpackr, p.constructor === Unpackr, typeof p.unpack] },
  { name: 'static #private field changed after the declaration', make: () => StaticCounter, check: (C) => [C.n, C.inc(), C.n] },
  { name: 'static #private Map and a static #private pointing back at the class', make: () => StaticRegistry, check: (C) => [C.entries(), C.add('c', 3), C.entries()] },
  { name: 'static #private fields of a base and a derived class, with an instance #private field', make: () => new DerivedStatic().setInst('i1'), check: (d) => { const C = d.constructor; return [C.base, C.own, C.bump(), d.inst, Object.getPrototypeOf(C).base]; } },
  { name: 'static #private holding a closure set after the declaration', make: () => StaticHook, check: (C) => [C.run(), C.run()] },
  { name: 'static #private set by a static block and changed later, read through a static #private getter and method', make: () => StaticBlock, check: (C) => [C.bump(), C.bump()] },
  { name: 'static #private of a class expression captured by a closure', make: () => { const K = class { static #c = 0; static next() { return ++K.#c; } }; K.next(); K.next(); return () => K.next(); }, check: (f) => [f(), f()] },
  { name: 'static #private of a frozen class, changed before freezing', make: () => { class Z { static #n = 1; static inc() { return ++Z.#n; } } Z.inc(); return Object.freeze(Z); }, check: (C) => [Object.isFrozen(C), C.inc(), C.inc()] },
  { name: 'instance of a frozen class with #private fields', make: () => { class Y { #v: number; constructor(v: number) { this.#v = v; } get v() { return this.#v; } } Object.freeze(Y); return new Y(7); }, check: (y) => [y.v, Object.isFrozen(y.constructor), new y.constructor(8).v] },
  { name: 'anonymous class expression', make: () => class { x = 1; }, check: (C) => [new C().x, C.name] },
  { name: 'class with a static method referencing the class', make: () => class Factory { static make() { return new Factory(); } kind = 'f'; }, check: (C) => C.make().kind },
];

functionTable('classes', cases);

describe('class tracker', () => {
  it('a class pickled into two payloads loads as one class in one receiver', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mp-tracker-'));
    try {
      const bag = Symbol.for('mp.test.bag');
      const first = (v: unknown) => {
        (globalThis as Record<symbol, unknown[]>)[bag] = [v];
        return true;
      };
      const second = (v: object) => {
        const prev = ((globalThis as Record<symbol, unknown[]>)[Symbol.for('mp.test.bag')] ?? [])[0] as object;
        return [prev instanceof v.constructor, Object.getPrototypeOf(prev) === Object.getPrototypeOf(v)];
      };
      await writeFile(join(dir, 'a.bin'), await dumps({ value: new Square(1, 1), check: first }));
      await writeFile(join(dir, 'b.bin'), await dumps({ value: new Square(2, 2), check: second }));
      const out = await decodeInChild(dir);
      assert.deepEqual(out['b'], { ok: [true, true] });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
