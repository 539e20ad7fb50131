/**
 * `modulepickle inspect`: what a payload holds, decoded without running it (like Python's pickletools):
 * header, sections, every function and class (by value or by reference, and why), module references, the manifest
 * of shipped files (count, size, largest entries) and the blobs carried inline.
 */
import { createHash } from 'node:crypto';
import { walkPayload, reducedOf, type Reduced } from '../executors/payload-walk.ts';

/** One function or class found in the payload. */
export interface FunctionEntry {
  readonly how: 'by value' | 'by reference' | 'built-in' | 'bound' | 'require';
  readonly kind: string;
  /** The source head (by value) or the export path (by reference). */
  readonly what: string;
  readonly why: string;
  /** Where it was defined (by value): the sender's file URL and 1-based line. */
  readonly where?: string;
  readonly captures?: readonly string[];
}

/** The inspection report (also printed as JSON with `--json`). */
export interface InspectReport {
  readonly bytes: number;
  readonly formatVersion: number;
  readonly hasCode: boolean;
  readonly sections: readonly { name: string; code: boolean; bytes: number }[];
  readonly bodyBytes: number;
  /** What the top-level value is. */
  readonly value: string;
  readonly functions: readonly FunctionEntry[];
  readonly modules: readonly { ref: string; namespace: boolean }[];
  readonly manifest?: {
    readonly id: string;
    /** The payload names the version by id only: the receiver uses its copy or fetches the manifest from the sender. */
    readonly byId?: boolean;
    readonly files: number;
    readonly symlinks: number;
    readonly totalBytes: number;
    readonly largest: readonly { path: string; size: number }[];
    readonly packages: Readonly<Record<string, string>>;
    readonly inlineBlobs: number;
    readonly inlineBlobBytes: number;
  };
  /** How many values each reducer produced (built-in types, functions, user types). */
  readonly reducers: Readonly<Record<string, number>>;
}

/** Walks a payload without running it. @throws DecodeError for malformed payloads */
export async function inspectPayload(bytes: Uint8Array): Promise<InspectReport> {
  const w = walkPayload(bytes);
  const reducers: Record<string, number> = {};
  for (const r of w.reduced) reducers[r.reducer] = (reducers[r.reducer] ?? 0) + 1;
  const functions = w.reduced.filter((r) => r.reducer === 'mp.function').map(describeFunction);
  const modules: { ref: string; namespace: boolean }[] = [];
  let manifest: InspectReport['manifest'];
  for (const s of w.sections) {
    if (s.name === 'modules' && Array.isArray(s.data)) {
      for (const need of s.data as { module?: unknown; namespace?: unknown }[]) modules.push({ ref: moduleRef(need?.module), namespace: need?.namespace === true });
    }
    if (s.name === 'ship' && typeof s.data === 'object' && s.data !== null) manifest = describeShip(s.data as { manifest?: unknown; blobs?: unknown });
  }
  return {
    bytes: bytes.length,
    formatVersion: w.formatVersion,
    hasCode: w.hasCode,
    sections: w.sections.map(({ name, code, bytes: n }) => ({ name, code, bytes: n })),
    bodyBytes: w.bodyBytes,
    value: describeValue(w.body),
    functions,
    modules,
    ...(manifest ? { manifest } : {}),
    reducers,
  };
}

function describeValue(v: unknown): string {
  const rec = reducedOf(v);
  if (rec) return rec.reducer === 'mp.function' ? `${describeFunction(rec).kind} (${describeFunction(rec).how})` : `${rec.reducer} value`;
  if (Array.isArray(v)) return `array of ${v.length}`;
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (v === null) return 'null';
  if (typeof v === 'object') return `object with ${Object.keys(v).length} keys`;
  return typeof v === 'string' ? `string of ${v.length} chars` : `${typeof v} ${String(v)}`;
}

function describeFunction(rec: Reduced): FunctionEntry {
  const a = (rec.args ?? {}) as Record<string, unknown>;
  switch (a['t']) {
    case 'ref': {
      const ref = (a['ref'] ?? {}) as { module?: unknown; path?: unknown };
      const path = Array.isArray(ref.path) ? ref.path.join('.') : '';
      return { how: 'by reference', kind: 'function', what: path || '(module object)', why: `exported by ${moduleRef(ref.module)}: the receiver imports it` };
    }
    case 'intrinsic':
      return { how: 'built-in', kind: 'function', what: Array.isArray(a['path']) ? a['path'].join('.') : '?', why: 'a JavaScript or Node.js built-in: looked up on the receiver' };
    case 'require':
      return { how: 'require', kind: 'function', what: 'require', why: `the require function of ${moduleRef(a['module'])}` };
    case 'bound':
      return { how: 'bound', kind: 'function', what: 'bound function', why: 'Function.prototype.bind: target, this and arguments are pickled' };
    case 'value': {
      const expression = typeof a['expression'] === 'string' ? a['expression'] : '';
      const kind = typeof a['kind'] === 'string' ? a['kind'] : 'function';
      const state = (rec.state ?? {}) as { captures?: unknown };
      const captures = state.captures && typeof state.captures === 'object' ? Object.keys(state.captures) : [];
      const url = typeof a['url'] === 'string' ? a['url'] : '';
      const line = typeof a['line'] === 'number' ? a['line'] + 1 : undefined;
      return {
        how: 'by value',
        kind,
        what: head(expression),
        why: `not reachable as an export of a module the receiver can import: its source (${expression.length} chars) travels${captures.length ? ` with ${captures.length} captured variable(s)` : ''}`,
        ...(url ? { where: `${url}${line ? `:${line}` : ''}` } : {}),
        captures,
      };
    }
    default:
      return { how: 'by value', kind: 'function', what: '?', why: `unrecognized function record (${String(a['t'])})` };
  }
}

function head(src: string): string {
  const one = src.replace(/\s+/g, ' ').trim();
  return one.length > 70 ? `${one.slice(0, 67)}...` : one;
}

function moduleRef(m: unknown): string {
  const r = (m ?? {}) as Record<string, unknown>;
  switch (r['kind']) {
    case 'builtin':
      return `node:${String(r['name'])} (builtin)`;
    case 'package':
      return `${String(r['name'])}@${String(r['version'])}${r['file'] ? ` ${String(r['file'])}` : ''} (package)`;
    case 'local':
      return `${String(r['path'])} (local, shipped)`;
    case 'file':
      return `${String(r['path'])} (file outside the project: same machine only)`;
    default:
      return 'unknown module';
  }
}

function describeShip(data: { manifest?: unknown; blobs?: unknown; id?: unknown }): InspectReport['manifest'] {
  if (data.manifest === undefined && typeof data.id === 'string') {
    // the payload names its version by id: the manifest itself is fetched by the receiver
    return { id: data.id, byId: true, files: 0, symlinks: 0, totalBytes: 0, largest: [], packages: {}, inlineBlobs: 0, inlineBlobBytes: 0 };
  }
  const text = typeof data.manifest === 'string' ? data.manifest : '{}';
  let parsed: { files?: unknown[]; packages?: unknown[] } = {};
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    // reported as an empty manifest
  }
  const files: { path: string; size: number }[] = [];
  let symlinks = 0;
  for (const f of Array.isArray(parsed.files) ? parsed.files : []) {
    if (!Array.isArray(f)) continue;
    if (f[1] === 'l') symlinks++;
    else files.push({ path: String(f[0]), size: Number(f[3]) || 0 });
  }
  const packages: Record<string, string> = {};
  for (const p of Array.isArray(parsed.packages) ? parsed.packages : []) if (Array.isArray(p)) packages[String(p[0])] = String(p[1]);
  const blobs = Array.isArray(data.blobs) ? (data.blobs as unknown[]) : [];
  let inlineBlobBytes = 0;
  for (const b of blobs) if (Array.isArray(b) && b[1] instanceof Uint8Array) inlineBlobBytes += b[1].length;
  return {
    id: createHash('sha256').update(text).digest('hex'),
    files: files.length,
    symlinks,
    totalBytes: files.reduce((s, f) => s + f.size, 0),
    largest: [...files].sort((a, b) => b.size - a.size).slice(0, 5),
    packages,
    inlineBlobs: blobs.length,
    inlineBlobBytes,
  };
}

/** Human-readable report. */
export function formatReport(r: InspectReport, name: string): string {
  const out: string[] = [];
  out.push(`${name}: ${r.bytes} bytes, modulepickle format ${r.formatVersion}${r.hasCode ? ', carries code' : ', data only'}`);
  out.push(`value: ${r.value} (body ${r.bodyBytes} bytes)`);
  out.push(`sections: ${r.sections.length ? r.sections.map((s) => `${s.name} (${s.bytes} bytes${s.code ? ', code' : ''})`).join(', ') : 'none'}`);
  if (r.functions.length) {
    out.push(`functions and classes (${r.functions.length}):`);
    for (const f of r.functions) {
      out.push(`  - ${f.kind} ${f.how}: ${f.what}`);
      out.push(`      why: ${f.why}`);
      if (f.where) out.push(`      defined at: ${f.where}`);
      if (f.captures?.length) out.push(`      captures: ${f.captures.join(', ')}`);
    }
  }
  if (r.modules.length) {
    out.push(`module references (${r.modules.length}):`);
    for (const m of r.modules) out.push(`  - ${m.ref}${m.namespace ? ' [namespace]' : ''}`);
  }
  if (r.manifest) {
    const m = r.manifest;
    if (m.byId) out.push(`shipped tree: version ${m.id.slice(0, 16)}, named by id (the receiver uses its copy, or fetches the manifest and the files it lacks from the sender)`);
    else out.push(`shipped tree: version ${m.id.slice(0, 16)}, ${m.files} files${m.symlinks ? ` + ${m.symlinks} symlinks` : ''}, ${m.totalBytes} bytes`);
    for (const f of m.largest) out.push(`  ${String(f.size).padStart(10)}  ${f.path}`);
    const pk = Object.entries(m.packages);
    if (pk.length) out.push(`  packages the code imports: ${pk.map(([n, v]) => `${n}@${v}`).join(', ')}`);
    out.push(m.inlineBlobs ? `  blobs carried inline: ${m.inlineBlobs} (${m.inlineBlobBytes} bytes)` : '  blobs: not carried (the receiver fetches the ones it lacks from the sender)');
  }
  const counts = Object.entries(r.reducers).filter(([k]) => !k.endsWith('()'));
  if (counts.length) out.push(`reduced values: ${counts.map(([k, n]) => `${k} x${n}`).join(', ')}`);
  return out.join('\n');
}

/** What would ship from a project folder (`modulepickle inspect <dir>`): the tree, and what is left out and why. */
export interface TreeReport {
  readonly root: string;
  readonly rootReason: string;
  readonly files: number;
  readonly symlinks: number;
  readonly totalBytes: number;
  readonly largest: readonly { path: string; size: number }[];
  /** The folders the library owns on this machine (cache folders), by real path: they never ship. */
  readonly owned: readonly { dir: string; why: string; insideRoot: boolean }[];
  /** Paths the walk left out, with the reason (owned folders, unsafe symlinks, unreadable folders). */
  readonly excluded: readonly { rel: string; reason: string }[];
}

/** Walks a project folder as a call from there would (nothing is hashed or run). @throws ShipError ERR_MP_NO_ROOT */
export async function inspectTree(dir: string, options: { cacheDir?: string } = {}): Promise<TreeReport> {
  const { findProjectRoot, isLocalPath } = await import('../ship/root.ts');
  const { walkProject } = await import('../ship/walk.ts');
  const { configuredCaches } = await import('../ship/owned.ts');
  const root = findProjectRoot(dir);
  const walked = walkProject(root.dir, { cacheDir: options.cacheDir });
  const files = walked.entries.filter((e) => e.kind === 'file');
  return {
    root: root.dir,
    rootReason: root.reason,
    files: files.length,
    symlinks: walked.entries.length - files.length,
    totalBytes: files.reduce((n, e) => n + e.stat.size, 0),
    largest: [...files].sort((a, b) => b.stat.size - a.stat.size).slice(0, 5).map((e) => ({ path: e.rel, size: e.stat.size })),
    owned: configuredCaches(options.cacheDir).map((o) => ({ ...o, insideRoot: o.dir === root.dir || isLocalPath(root.dir, o.dir) })),
    excluded: walked.skipped,
  };
}

/** Human-readable tree report. */
export function formatTreeReport(r: TreeReport): string {
  const out: string[] = [];
  out.push(`project root: ${r.root} (${r.rootReason})`);
  out.push(`ships: ${r.files} files${r.symlinks ? ` + ${r.symlinks} symlinks` : ''}, ${r.totalBytes} bytes`);
  for (const f of r.largest) out.push(`  ${String(f.size).padStart(10)}  ${f.path}`);
  out.push('never ships, on this machine:');
  for (const o of r.owned) out.push(`  - ${o.dir}: ${o.why}${o.insideRoot ? ' [inside the project]' : ''}`);
  out.push('  - any folder holding a CACHEDIR.TAG (every cache folder modulepickle writes to has one)');
  if (r.excluded.length) {
    out.push(`left out (${r.excluded.length}):`);
    for (const s of r.excluded.slice(0, 50)) out.push(`  - ${s.rel}: ${s.reason}`);
    if (r.excluded.length > 50) out.push(`  ... and ${r.excluded.length - 50} more (--json lists all)`);
  }
  return out.join('\n');
}
