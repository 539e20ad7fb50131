/**
 * V8 inspector access: where a function was defined (`[[FunctionLocation]]`), which scopes it closes over
 * (`[[Scopes]]`) and the current values of the variables in them, read back into JS without copying.
 * `node:inspector` `Session.post` on the main thread (and in a worker, for its own isolate) completes synchronously.
 */
import { Session } from 'node:inspector';
import { EncodeError } from '../errors.ts';

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
  isModule: boolean;
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
let holder: { fn?: unknown; out?: unknown } = {};
let holderId = '';

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
  withDebugger(() => undefined);
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
  try {
    // Never let a `debugger` statement pause on this session.
    post('Debugger.setSkipAllPauses', { skip: true });
    return f();
  } finally {
    post('Debugger.disable', {});
  }
}

function scriptInfo(scriptId: string): ScriptInfo | undefined {
  let info = scripts.get(scriptId);
  if (!info) {
    // A script loaded since the last replay.
    withDebugger(() => undefined);
    info = scripts.get(scriptId);
  }
  return info;
}

/** Source text of a loaded script (as V8 runs it, i.e. after any loader transform). Cached. */
export function scriptSource(scriptId: string): string {
  let src = sources.get(scriptId);
  if (src === undefined) {
    src = withDebugger(() => post<{ scriptSource: string }>('Debugger.getScriptSource', { scriptId }).scriptSource);
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
  if (!session) connect();
  else withDebugger(() => undefined);
}

/** All loaded scripts that are files (`file://` URLs), with whether they are ES modules. */
export function loadedScripts(): ReadonlyMap<string, { url: string; isModule: boolean }> {
  if (!session) connect();
  return scripts;
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
  if (!session) connect();
  holder.fn = fn;
  try {
    const fnRef = post<{ result: PropertyDescriptor[] }>('Runtime.getProperties', { objectId: holderId, ownProperties: true, objectGroup: group })
      .result.find((p) => p.name === 'fn')?.value;
    if (!fnRef?.objectId) throw new EncodeError('ERR_MP_INSPECTOR', 'the inspector could not see the function');
    const props = post<{ internalProperties?: PropertyDescriptor[] }>('Runtime.getProperties', {
      objectId: fnRef.objectId,
      ownProperties: true,
      objectGroup: group,
    });
    const internal = new Map((props.internalProperties ?? []).map((p) => [p.name, p.value]));
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
      location = { scriptId: loc.scriptId, url: info?.url ?? '', isModule: info?.isModule ?? false, line: loc.lineNumber, column: loc.columnNumber };
    }
    return { location, scopes };
  } finally {
    holder.fn = undefined;
    holder.out = undefined;
    release();
  }
}

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
