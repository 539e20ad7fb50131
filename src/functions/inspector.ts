/**
 * V8 inspector access: where a function was defined (`[[FunctionLocation]]`), which scopes it closes over
 * (`[[Scopes]]`) and the current values of the variables in them, read back into JS without copying.
 * `node:inspector` `Session.post` on the main thread (and in a worker, for its own isolate) completes synchronously.
 *
 * Script URLs are looked up lazily, per unknown script id, never at connect: `Debugger.enable` replays one
 * `scriptParsed` per loaded script and hashes every source on its first replay (17 ms in plain node, 43 ms under
 * tsx on this machine), while `Profiler.getBestEffortCoverage` names the scripts that have run code in 2-6 ms on a
 * small heap (it walks the heap, so it is used only while the heap is small). Script sources come from the V8
 * natives (natives.ts) when they are available, else from the debugger.
 */
import { Session } from 'node:inspector';
import { getHeapStatistics } from 'node:v8';
import { EncodeError } from '../errors.ts';
import { nativeScriptSource, setNativesVerifier } from './natives.ts';

/** Kind of one scope in a function's scope chain, innermost first. */
export type ScopeType = 'closure' | 'block' | 'catch' | 'module' | 'script' | 'with' | 'eval' | 'local' | 'global';

/** One scope of a function's scope chain with the variables V8 keeps in it (those some closure uses). */
export interface ScopeSnapshot {
  readonly type: ScopeType;
  /** V8's description, e.g. `Closure (makeCounter)`. */
  readonly description: string;
  /** Variable name to current value (a null-prototype copy of the bindings; the values are the real objects). */
  readonly vars: Readonly<Record<string, unknown>>;
}

/** Where a function is defined. */
export interface FunctionLocation {
  readonly scriptId: string;
  /** Script URL (`file:///...` for files, `node:...` for builtins, `''` for eval code). */
  readonly url: string;
  /** Whether the script is an ES module. */
  readonly isModule: boolean;
  /** 0-based line and column of the function start. */
  readonly line: number;
  readonly column: number;
}

/** What the inspector tells about a function. */
export interface FunctionInspection {
  readonly location: FunctionLocation | undefined;
  /** Scope chain innermost first, without the global scope. */
  readonly scopes: readonly ScopeSnapshot[];
  /** Set for bound functions. */
  readonly bound?: { readonly target: Function; readonly thisArg: unknown; readonly args: readonly unknown[] };
}

interface ScriptInfo {
  url: string;
  /** Known from `scriptParsed`; coverage does not say (then the function's scope chain tells). */
  isModule?: boolean;
}

interface RemoteObject {
  type: string;
  subtype?: string;
  objectId?: string;
  value?: unknown;
}
interface PropertyDescriptor {
  name: string;
  value?: RemoteObject;
}

const holderKey = Symbol.for('modulepickle.inspector.holder');
const group = 'modulepickle';
let session: Session | undefined;
const scripts = new Map<string, ScriptInfo>();
const sources = new Map<string, string>();
/** A function of each inspected script, so the natives can give that script's source without the debugger. */
const scriptFunctions = new Map<string, WeakRef<Function>>();
let holder: { fn?: unknown; out?: unknown } = {};
let holderId = '';
/** A full `scriptParsed` replay happened (so `scripts` lists every script loaded before it, with `isModule`). */
let replayed = false;
/** Coverage walks the heap: above this many bytes of heap in use, the debugger replay is cheaper. */
const coverageHeapLimit = 64 * 1024 * 1024;

/** How often scripts were looked up by coverage, and how often the debugger was enabled (each time a full replay). */
export const scriptLookups = { coverage: 0, replay: 0 };

function post<T>(method: string, params?: object): T {
  if (!session) connect();
  let result: unknown;
  let error: Error | null | undefined;
  (session as Session).post(method, params as never, (err: Error | null, res: unknown) => {
    error = err;
    result = res;
  });
  if (error) throw error;
  if (result === undefined) {
    throw new EncodeError('ERR_MP_INSPECTOR', `the V8 inspector did not answer '${method}' synchronously; modulepickle must run on a thread with its own inspector session`);
  }
  return result as T;
}

function connect(): void {
  const s = new Session();
  try {
    s.connect();
  } catch (cause) {
    throw new EncodeError('ERR_MP_INSPECTOR', 'cannot connect to the V8 inspector (node:inspector); functions can only be pickled where node:inspector is available', [], { cause });
  }
  s.on('Debugger.scriptParsed', (m: { params: { scriptId: string; url: string; isModule?: boolean } }) => {
    scripts.set(m.params.scriptId, { url: m.params.url, isModule: m.params.isModule === true });
  });
  session = s;
  holder = {};
  (globalThis as Record<symbol, unknown>)[holderKey] = holder;
  const r = post<{ result: RemoteObject }>('Runtime.evaluate', { expression: `globalThis[Symbol.for('modulepickle.inspector.holder')]` });
  holderId = r.result.objectId ?? '';
}

/**
 * Runs `f` with the Debugger domain enabled, then disables it again. Enabling replays one `scriptParsed` event per
 * loaded script (our scriptId -> URL table); it is not left on because an enabled debugger makes V8 instrument
 * every promise (`await`-heavy code runs several times slower).
 */
function withDebugger<T>(f: () => T): T {
  post('Debugger.enable', {});
  replayed = true;
  scriptLookups.replay++;
  try {
    // Never let a `debugger` statement pause on this session.
    post('Debugger.setSkipAllPauses', { skip: true });
    return f();
  } finally {
    post('Debugger.disable', {});
  }
}

function coverageLookup(): void {
  let used = Infinity;
  try {
    used = getHeapStatistics().used_heap_size;
  } catch {
    // keep Infinity: use the replay
  }
  if (used > coverageHeapLimit) return;
  let result: { scriptId: string; url: string }[];
  try {
    result = post<{ result: { scriptId: string; url: string }[] }>('Profiler.getBestEffortCoverage', {}).result;
  } catch {
    return;
  }
  scriptLookups.coverage++;
  for (const r of result) if (!scripts.has(r.scriptId)) scripts.set(r.scriptId, { url: r.url });
}

function scriptInfo(scriptId: string): ScriptInfo | undefined {
  let info = scripts.get(scriptId);
  if (!info) {
    // A script not seen yet: the cheap lookup first, then a full replay.
    coverageLookup();
    info = scripts.get(scriptId);
  }
  if (!info) {
    withDebugger(() => undefined);
    info = scripts.get(scriptId);
  }
  return info;
}

/**
 * Source text of a loaded script (as V8 runs it, i.e. after any loader transform). Cached. From the natives when a
 * function of that script was inspected, else from the debugger.
 */
export function scriptSource(scriptId: string): string {
  let src = sources.get(scriptId);
  if (src === undefined) {
    const fn = scriptFunctions.get(scriptId)?.deref();
    src = fn ? nativeScriptSource(fn) : undefined;
    src ??= withDebugger(() => post<{ scriptSource: string }>('Debugger.getScriptSource', { scriptId }).scriptSource);
    sources.set(scriptId, src);
  }
  return src;
}

/** Fetches the sources of several scripts with one debugger round trip (then served by `scriptSource`). */
export function prefetchSources(scriptIds: readonly string[]): void {
  const missing = scriptIds.filter((id) => !sources.has(id));
  if (!missing.length) return;
  withDebugger(() => {
    for (const id of missing) {
      try {
        sources.set(id, post<{ scriptSource: string }>('Debugger.getScriptSource', { scriptId: id }).scriptSource);
      } catch {
        sources.set(id, '');
      }
    }
  });
}

/** Replays the loaded scripts (scriptId -> URL) so scripts loaded since the last replay are known. */
export function refreshScripts(): void {
  withDebugger(() => undefined);
}

/** Loaded scripts with whether they are ES modules (replays first unless the last replay told about all known ones). */
export function loadedScripts(): ReadonlyMap<string, { url: string; isModule: boolean }> {
  let complete = replayed;
  for (const s of scripts.values()) if (s.isModule === undefined) complete = false;
  if (!complete) withDebugger(() => undefined);
  const out = new Map<string, { url: string; isModule: boolean }>();
  for (const [id, s] of scripts) if (s.isModule !== undefined) out.set(id, { url: s.url, isModule: s.isModule });
  return out;
}

function scopeType(description: string): ScopeType {
  const word = description.split(' ')[0]?.toLowerCase() ?? '';
  switch (word) {
    case 'closure':
    case 'block':
    case 'catch':
    case 'module':
    case 'script':
    case 'eval':
    case 'local':
    case 'global':
      return word;
    case 'with':
      return 'with';
    default:
      return 'closure';
  }
}

const readScopes = `function(){ const h = globalThis[Symbol.for('modulepickle.inspector.holder')]; h.out = this; }`;
const readBound = `function(t, a){ globalThis[Symbol.for('modulepickle.inspector.holder')].out = { target: t, thisArg: this, args: a }; }`;

function callArg(r: RemoteObject | undefined): { objectId?: string; value?: unknown; unserializableValue?: string } {
  if (!r) return {};
  if (r.objectId) return { objectId: r.objectId };
  if ('unserializableValue' in r) return { unserializableValue: (r as { unserializableValue: string }).unserializableValue };
  return r.type === 'undefined' ? {} : { value: r.value };
}

/**
 * Inspects a function: location, scope chain with current variable values, bound target.
 * Costs three synchronous inspector round trips (about 0.1 ms).
 * @throws ERR_MP_INSPECTOR when the inspector is not usable
 */
export function inspectFunction(fn: Function): FunctionInspection {
  const internal = internalProperties(fn);
  try {
    const target = internal.get('[[TargetFunction]]');
    if (target) {
      post('Runtime.callFunctionOn', {
        objectId: internal.get('[[BoundThis]]')?.objectId ?? holderId,
        functionDeclaration: readBound,
        arguments: [callArg(target), callArg(internal.get('[[BoundArgs]]'))],
      });
      const out = holder.out as { target: Function; thisArg: unknown; args: unknown[] };
      const thisRef = internal.get('[[BoundThis]]');
      const thisArg = thisRef?.objectId ? out.thisArg : thisRef?.type === 'undefined' ? undefined : thisRef?.value;
      return { location: undefined, scopes: [], bound: { target: out.target, thisArg, args: [...out.args] } };
    }
    const loc = internal.get('[[FunctionLocation]]')?.value as { scriptId: string; lineNumber: number; columnNumber: number } | undefined;
    const scopesRef = internal.get('[[Scopes]]');
    const scopes: ScopeSnapshot[] = [];
    if (scopesRef?.objectId) {
      post('Runtime.callFunctionOn', { objectId: scopesRef.objectId, functionDeclaration: readScopes });
      const list = holder.out as ArrayLike<{ description: string; object: Record<string, unknown> }>;
      for (let i = 0; i < list.length; i++) {
        const s = list[i];
        if (!s) continue;
        const type = scopeType(s.description);
        if (type === 'global') continue;
        scopes.push({ type, description: s.description, vars: s.object });
      }
    }
    let location: FunctionLocation | undefined;
    if (loc) {
      const info = scriptInfo(loc.scriptId);
      // Every function of an ES module has the module's scope in its chain, and no other function has one.
      const isModule = info?.isModule ?? scopes.some((sc) => sc.type === 'module');
      location = { scriptId: loc.scriptId, url: info?.url ?? '', isModule, line: loc.lineNumber, column: loc.columnNumber };
      if (!scriptFunctions.has(loc.scriptId)) scriptFunctions.set(loc.scriptId, new WeakRef(fn));
    }
    return { location, scopes };
  } finally {
    holder.out = undefined;
    release();
  }
}

const readHeld = `globalThis[Symbol.for('modulepickle.inspector.holder')].fn`;

/** A function's internal properties (`[[FunctionLocation]]`, `[[Scopes]]`, `[[TargetFunction]]`, ...). */
function internalProperties(fn: Function): Map<string, RemoteObject | undefined> {
  if (!session) connect();
  holder.fn = fn;
  try {
    // One fixed expression (V8 keeps it compiled): cheaper than listing the holder's properties.
    const fnRef = post<{ result: RemoteObject }>('Runtime.evaluate', { expression: readHeld, objectGroup: group, silent: true }).result;
    if (!fnRef?.objectId) throw new EncodeError('ERR_MP_INSPECTOR', 'the inspector could not see the function');
    const props = post<{ internalProperties?: PropertyDescriptor[] }>('Runtime.getProperties', {
      objectId: fnRef.objectId,
      ownProperties: true,
      // Own properties are not used: skipping indexed ones is the only cut the protocol offers (about 15%).
      nonIndexedPropertiesOnly: true,
      objectGroup: group,
    });
    return new Map((props.internalProperties ?? []).map((p) => [p.name, p.value]));
  } finally {
    holder.fn = undefined;
  }
}

// The natives name scripts by the same ids as `[[FunctionLocation]]`, or they are not used.
setNativesVerifier((probe, scriptId) => {
  try {
    const loc = internalProperties(probe).get('[[FunctionLocation]]')?.value as { scriptId?: string } | undefined;
    release();
    return loc?.scriptId === String(scriptId);
  } catch {
    return false;
  }
});

let pendingRelease = 0;
/** Releases the inspector's handles in batches (one round trip per 32 inspections instead of one each). */
function release(): void {
  if (++pendingRelease < 32) return;
  pendingRelease = 0;
  post('Runtime.releaseObjectGroup', { objectGroup: group });
}

const readValues = `function(){ globalThis[Symbol.for('modulepickle.inspector.holder')].out = Array.prototype.slice.call(arguments); }`;

/**
 * Private members (`#x`) of an object as `[name, value]` pairs, read through the inspector (JS cannot read them
 * from outside the class).
 * @throws ERR_MP_INSPECTOR when the inspector is not usable
 */
export function readPrivateMembers(obj: object): [string, unknown][] {
  if (!session) connect();
  holder.fn = obj;
  try {
    const ref = post<{ result: PropertyDescriptor[] }>('Runtime.getProperties', { objectId: holderId, ownProperties: true, objectGroup: group })
      .result.find((p) => p.name === 'fn')?.value;
    if (!ref?.objectId) return [];
    const props = post<{ privateProperties?: (PropertyDescriptor & { get?: RemoteObject; set?: RemoteObject })[] }>('Runtime.getProperties', {
      objectId: ref.objectId,
      ownProperties: true,
      objectGroup: group,
    });
    const fields = (props.privateProperties ?? []).filter((p) => p.value !== undefined);
    if (!fields.length) return [];
    post('Runtime.callFunctionOn', { objectId: holderId, functionDeclaration: readValues, arguments: fields.map((p) => callArg(p.value)) });
    const values = holder.out as unknown[];
    return fields.map((p, i) => [p.name, values[i]]);
  } finally {
    holder.fn = undefined;
    holder.out = undefined;
    release();
  }
}
