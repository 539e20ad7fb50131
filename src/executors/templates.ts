/**
 * Call templates, the client's side: `run(() => f(x))` in a loop makes a new closure per call. Instead of pickling
 * each one in full, the executor pickles one template per source location (the function's payload without its
 * by-value captures, sent once per worker by hash like any function) and sends each call's captured values in a
 * small data payload of their own. The worker makes the call's closure from the template (`instantiate`).
 *
 * A template is reused while everything it holds is what a fresh `dumps` would write:
 * - the same closure location, with each captured name bound by the same scope;
 * - the same values for the captures that travel by reference (modules' exports, built-ins), by identity;
 * - the same code version: the template's ship stamp is checked on every call (the tree watch, after the same
 *   wait for pending file events that `dumps` does), so an edit is seen by the very next call.
 * - the same state for the captured functions that travel by value in the template (the program's own helpers):
 *   own properties as created, and captures that are settled bindings (settledByValue).
 * The other captures (primitives, plain data) are pickled on every call; data that holds code (a function by
 * value, a module) and functions by value that are not settled are not split, and that call is pickled in full.
 */
import { createHash } from 'node:crypto';
import { capturedByReference, currentShipBuild, dumps, exportOf, readCaptured, settledByValue, type Captured, type PickleOptions, type ShipStamp, type TemplateOf } from './pickler.ts';
import { payloadHasCode, reducedOf, walkPayload } from './payload-walk.ts';
import type { EncodedFunction } from './task.ts';

interface Template {
  readonly fn: EncodedFunction;
  /** Per captured name: the value it was made with (in the template), or `byValue` (sent with each call). */
  readonly statics: readonly unknown[];
  /** Per captured name: a function in the template by value, whose own state is checked again on every call. */
  readonly settled: readonly boolean[];
  readonly stamp: ShipStamp | undefined;
}

/** A call split into its template and its captures (`undefined` when every capture is in the template). */
export interface TemplateCall {
  readonly fn: EncodedFunction;
  readonly captures: Uint8Array | undefined;
}

const byValue = Symbol('byValue');
const limit = 1024;
/** Templates by location key, per dumps options object (an executor's); `null`: this location never splits. */
const templates = new WeakMap<object, Map<string, Template | null>>();

function isPrimitive(v: unknown): boolean {
  return (typeof v !== 'object' && typeof v !== 'function') || v === null;
}

/**
 * The call's template and captures, or undefined when the function does not split (then pickle it in full).
 * @throws EncodeError from the codec (the same errors a full `dumps` of the function gives)
 */
export async function templateCall(fn: Function, options: PickleOptions): Promise<TemplateCall | undefined> {
  const captured = readCaptured(fn);
  if (!captured) return referenceCall(fn, options);
  let map = templates.get(options);
  if (!map) templates.set(options, (map = new Map()));
  let t = map.get(captured.key);
  if (t === null) return undefined;
  if (t && !(await current(t, captured, options))) t = undefined;
  if (!t) {
    const made = await makeTemplate(fn, captured, options);
    if (made === undefined) return undefined;
    if (map.size >= limit) map.clear();
    map.set(captured.key, made);
    if (made === null) return undefined;
    t = made;
  }
  const record: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  let count = 0;
  let plain = true;
  for (let i = 0; i < captured.names.length; i++) {
    if (t.statics[i] !== byValue) continue;
    const v = captured.values[i];
    record[captured.names[i] as string] = v;
    count++;
    if (!isPrimitive(v)) plain = false;
  }
  if (count === 0) return { fn: t.fn, captures: undefined };
  const captures = await dumps(record, options);
  // Data only: code in a capture may share scopes or state with the template, which one payload keeps and two lose.
  if (!plain && payloadHasCode(captures)) return undefined;
  return { fn: t.fn, captures };
}

/** Payloads of functions that travel by reference, per function object, with the export they were made for. */
const byReference = new WeakMap<object, WeakMap<Function, { readonly fn: EncodedFunction; readonly ref: object; readonly stamp: ShipStamp | undefined }>>();

/**
 * A function object that travels by reference (`run(exportedFn, x)`): its payload names the export and the code
 * version, so it is kept while the module index gives the same export for it and the version is the same.
 */
async function referenceCall(fn: Function, options: PickleOptions): Promise<TemplateCall | undefined> {
  const ref = exportOf(fn, options);
  if (!ref) return undefined;
  let map = byReference.get(options);
  if (!map) byReference.set(options, (map = new WeakMap()));
  const kept = map.get(fn);
  if (kept && kept.ref === ref && (kept.stamp === undefined || (await currentShipBuild(kept.stamp)).id === kept.stamp.build.id)) return { fn: kept.fn, captures: undefined };
  const { fnBytes, stamp } = await stamped(fn, options, undefined);
  const root = reducedOf(walkPayload(fnBytes).body);
  // Not a reference after all: these are the bytes of a fresh dumps, used for this call only.
  if (root?.reducer !== 'mp.function' || (root.args as { t?: unknown }).t !== 'ref') return { fn: encoded(fnBytes), captures: undefined };
  const made = { fn: encoded(fnBytes), ref, stamp };
  map.set(fn, made);
  return { fn: made.fn, captures: undefined };
}

/** Pickles a function with its ship stamp (and the captures `leaveOut` names left out). */
async function stamped(fn: Function, options: PickleOptions, template: TemplateOf | undefined): Promise<{ fnBytes: Uint8Array; stamp: ShipStamp | undefined }> {
  let stamp: ShipStamp | undefined;
  const ship = options['ship'];
  const withStamp = ship === false ? false : { ...(typeof ship === 'object' && ship !== null ? ship : {}), onStamp: (s: ShipStamp) => (stamp = s) };
  const fnBytes = await dumps(fn, { ...options, ship: withStamp, ...(template ? { templateOf: template } : {}) });
  return { fnBytes, stamp };
}

function encoded(fnBytes: Uint8Array): EncodedFunction {
  const fnHash = createHash('sha256').update(fnBytes).digest();
  return { fnKey: fnHash.toString('hex'), fnHash, fnBytes };
}

/** Whether a template still is what a fresh `dumps` of this closure would write (less its by-value captures). */
async function current(t: Template, captured: Captured, options: PickleOptions): Promise<boolean> {
  for (let i = 0; i < t.statics.length; i++) {
    const s = t.statics[i];
    // A by-value slot that now holds a function takes a new template (functions are not sent as data).
    if (s === byValue ? typeof captured.values[i] === 'function' : s !== captured.values[i]) return false;
    if (t.settled[i] && !settledByValue(s as Function, options)) return false;
  }
  if (t.stamp === undefined) return true;
  return (await currentShipBuild(t.stamp)).id === t.stamp.build.id;
}

/**
 * Pickles the template of a closure: captures that travel by reference stay in it, the others are left out.
 * `null` when closures of this location never split (the function itself travels by reference); `undefined`
 * when this one does not (a capture is a function by value that is not settled).
 */
async function makeTemplate(fn: Function, captured: Captured, options: PickleOptions): Promise<Template | null | undefined> {
  const statics: unknown[] = [];
  const settled: boolean[] = [];
  const leaveOut = new Set<string>();
  for (let i = 0; i < captured.names.length; i++) {
    const v = captured.values[i];
    const byRef = !isPrimitive(v) && capturedByReference(v as object, options);
    // A helper function by value (one of the program's own, say) belongs to the template while it is settled.
    const helper = !byRef && typeof v === 'function';
    if (helper && !settledByValue(v, options)) return undefined;
    if (byRef || helper) statics.push(v);
    else (statics.push(byValue), leaveOut.add(captured.names[i] as string));
    settled.push(helper);
  }
  const { fnBytes, stamp } = await stamped(fn, options, { fn, leaveOut, inspection: captured.inspection });
  const root = reducedOf(walkPayload(fnBytes).body);
  if (root?.reducer !== 'mp.function' || (root.args as { t?: unknown }).t !== 'value') return null;
  return { fn: encoded(fnBytes), statics, settled, stamp };
}
