/**
 * The extension point: how a type becomes pickled parts and comes back.
 * Built-in types, the function layer and user types all use this one registry
 * (cloudpickle's `dispatch_table` + `reducer_override`, without private hooks).
 */
import { ModulePickleError, type GraphPath } from '../errors.ts';

/** Objects may implement this method to pickle themselves: `[reduceSymbol]() { return { restore, args } }`. */
export const reduceSymbol: unique symbol = Symbol.for('modulepickle.reduce') as never;

/** Context handed to `reduce`/`getState` while encoding. */
export interface ReduceContext {
  /** Path from the root to the value being reduced. */
  path(): GraphPath;
  /** Per-payload scratch space for layers (keyed by a symbol or object the layer owns). */
  readonly scratch: Map<unknown, unknown>;
  /** Options passed to `dumps`. */
  readonly options: Readonly<Record<string, unknown>>;
}

/** Context handed to `restore`/`setState` while decoding. */
export interface RestoreContext {
  readonly scratch: Map<unknown, unknown>;
  readonly options: Readonly<Record<string, unknown>>;
}

/**
 * How one type is pickled. `reduce` returns the arguments `restore` needs to create the value.
 * Parts that may point back at the value itself (cycles) go in `getState`/`setState`,
 * which run after the value exists.
 */
export interface Reducer<T extends object = object, A = unknown, S = unknown> {
  /** Stable name written into payloads; the receiver looks the reducer up by it. */
  readonly name: string;
  reduce(value: T, ctx: ReduceContext): A;
  restore(args: A, ctx: RestoreContext): T;
  getState?(value: T, ctx: ReduceContext): S;
  setState?(value: T, state: S, ctx: RestoreContext): void;
  /**
   * Whether the codec also keeps the value's own properties (with attributes) and extensibility.
   * A function returns the keys to keep. Built-in types use this for extra properties.
   */
  readonly ownProps?: boolean | ((value: T) => (string | symbol)[]);
  /** Restoring creates or runs code: refused by `loads(bytes, { code: false })`. */
  readonly code?: boolean;
  /** Instances of subclasses may use this reducer, with the subclass prototype restored after. */
  readonly subclassable?: boolean;
}

/**
 * What a `reducerOverride` hook or a `[reduceSymbol]` method returns: either a registered reducer
 * applied to the value, or a restore function (pickled like any value) with its arguments.
 */
export type Reduction =
  | { readonly reducer: Reducer<never, unknown, unknown> | string; readonly args?: never; readonly state?: never }
  | { readonly restore: (...args: never[]) => unknown; readonly args: readonly unknown[]; readonly state?: Readonly<Record<string | symbol, unknown>> };

/** Per-call hook: return a reduction to take over a value, or `undefined` to leave it to the registry. */
export type ReducerOverride = (value: object, ctx: ReduceContext) => Reduction | undefined;

/**
 * A named part of a payload written before the value body (see DESIGN: the module table, the shipped manifest).
 * `encode` runs after the body in descending `rank`, so a section can use what reducers recorded in `ctx.scratch`;
 * `decode` runs before the body in ascending `rank`, so the body's `restore` calls find what they need.
 */
export interface Section {
  readonly name: string;
  readonly rank: number;
  /** Carries code: refused by `loads(bytes, { code: false })`. */
  readonly code?: boolean;
  /** Runs before the body is encoded (a layer may index values that appeared since the last payload). */
  begin?(ctx: ReduceContext): void;
  /** Returns a data value to store, or `undefined` to omit the section. */
  encode(ctx: ReduceContext): unknown;
  /** Asynchronous `encode`, preferred by `dumps` (`dumpsSync` uses `encode`): e.g. to wait for file events first. */
  encodeAsync?(ctx: ReduceContext): Promise<unknown> | unknown;
  /** Receives the stored data value. May return a Promise (only `loads`, not `loadsSync`, awaits it). */
  decode(data: unknown, ctx: RestoreContext): void | Promise<void>;
}

type AnyReducer = Reducer<object, unknown, unknown>;

/** Bumped by every `registerSection` of any registry, so cached section lists (which include a parent's) go stale. */
let sectionEpoch = 0;

/** A set of reducers looked up by prototype, by predicate, and by object identity. */
export class Registry {
  readonly #byProto = new Map<object, AnyReducer>();
  readonly #byName = new Map<string, AnyReducer>();
  readonly #matchers: { test: (value: object) => boolean; reducer: AnyReducer }[] = [];
  readonly #byIdentity = new Map<object, AnyReducer>();
  readonly #sections = new Map<string, Section>();
  readonly #parent: Registry | undefined;
  #sortedSections: readonly Section[] = [];
  #sortedEpoch = -1;

  constructor(parent?: Registry) {
    this.#parent = parent;
  }

  /** Registers a reducer for instances whose prototype is exactly `ctor.prototype`. @throws ERR_MP_REDUCER_EXISTS */
  register<T extends object, A, S>(ctor: abstract new (...args: never[]) => T, reducer: Reducer<T, A, S>): this {
    this.#addName(reducer as unknown as AnyReducer);
    this.#byProto.set(ctor.prototype as object, reducer as unknown as AnyReducer);
    return this;
  }

  /** Registers a reducer for any object the predicate accepts (checked after prototype lookup fails). */
  registerMatcher<T extends object>(test: (value: object) => value is T, reducer: Reducer<T, unknown, unknown>): this;
  registerMatcher(test: (value: object) => boolean, reducer: Reducer<object, unknown, unknown>): this;
  registerMatcher(test: (value: object) => boolean, reducer: AnyReducer): this {
    this.#addName(reducer);
    this.#matchers.push({ test, reducer });
    return this;
  }

  /** Registers a reducer for one specific object (checked first; used for values pickled by reference). */
  registerValue(value: object, reducer: Reducer<object, unknown, unknown>): this {
    if (!this.byName(reducer.name)) this.#addName(reducer);
    this.#byIdentity.set(value, reducer);
    return this;
  }

  /** Registers a payload section. @throws ERR_MP_REDUCER_EXISTS when the name is taken */
  registerSection(section: Section): this {
    if (this.#sections.has(section.name)) {
      throw new ModulePickleError('ERR_MP_REDUCER_EXISTS', `a section named '${section.name}' is already registered`);
    }
    this.#sections.set(section.name, section);
    sectionEpoch++;
    return this;
  }

  /** All sections (own and inherited), in ascending rank (a fresh array; the sorted list is cached). */
  sections(): Section[] {
    if (this.#sortedEpoch !== sectionEpoch) {
      const all = new Map(this.#parent ? this.#parent.sections().map((s) => [s.name, s] as const) : []);
      for (const [name, s] of this.#sections) all.set(name, s);
      this.#sortedSections = [...all.values()].sort((a, b) => a.rank - b.rank);
      this.#sortedEpoch = sectionEpoch;
    }
    return this.#sortedSections.slice();
  }

  /** Reducer registered for this exact prototype, if any. */
  byPrototype(proto: object): AnyReducer | undefined {
    return this.#byProto.get(proto) ?? this.#parent?.byPrototype(proto);
  }

  /** Reducer registered for this exact object, if any. */
  byIdentity(value: object): AnyReducer | undefined {
    const own = this.#byIdentity.size === 0 ? undefined : this.#byIdentity.get(value);
    return own ?? this.#parent?.byIdentity(value);
  }

  /** Whether any identity reducers exist (lets the encoder skip the lookup). */
  get hasIdentities(): boolean {
    return this.#byIdentity.size > 0 || (this.#parent?.hasIdentities ?? false);
  }

  /** First matcher that accepts the value. */
  byMatcher(value: object): AnyReducer | undefined {
    for (const m of this.#matchers) if (m.test(value)) return m.reducer;
    return this.#parent?.byMatcher(value);
  }

  /** Reducer by its wire name. */
  byName(name: string): AnyReducer | undefined {
    return this.#byName.get(name) ?? this.#parent?.byName(name);
  }

  #addName(reducer: AnyReducer): void {
    const existing = this.#byName.get(reducer.name);
    if (existing && existing !== reducer) {
      throw new ModulePickleError('ERR_MP_REDUCER_EXISTS', `a reducer named '${reducer.name}' is already registered; give yours another name`);
    }
    this.#byName.set(reducer.name, reducer);
  }
}
