/**
 * Receiver side: loads the modules a payload references, synchronously where possible (builtins, CommonJS),
 * with `import()` for ES modules.
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DecodeError } from '../errors.ts';
import { walkPath } from './intrinsics.ts';
import type { ExportRef, ModuleRef } from './module-ref.ts';
import { describeModule, moduleKey } from './module-ref.ts';

const require = createRequire(import.meta.url);

// An ES module URL, once imported, names the same instance for the life of the process (the module map is never
// cleared), so its namespace is remembered: a payload that references an already loaded module decodes
// synchronously, without a trip through the loader (and its hooks thread under tsx). Failures are not remembered.
const namespaces = new Map<string, unknown>();

function importOnce(url: string): unknown {
  if (namespaces.has(url)) return namespaces.get(url);
  // A JSON module imports only with its type attribute (what a namespace of one was imported with at home).
  const loading = /\.json$/i.test(new URL(url).pathname) ? import(url, { with: { type: 'json' } }) : import(url);
  return loading.then((ns: unknown) => {
    namespaces.set(url, ns);
    return ns;
  });
}

/** Where a package is installed, searching `node_modules` folders upward from `from`. */
export function findPackageDir(name: string, from: string): string | undefined {
  let dir = resolve(from);
  for (;;) {
    const candidate = join(dir, 'node_modules', ...name.split('/'));
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

function major(v: string): string {
  const m = /^(\d+)\.(\d+)/.exec(v);
  if (!m) return v;
  return m[1] === '0' ? `0.${m[2]}` : (m[1] as string);
}

/**
 * Where references resolve on the receiver: local files against `local` (the project root or a shipped tree),
 * packages in the `node_modules` folders at or above each of `packages`, in order (the receiver's installation).
 */
export interface ModuleBases {
  readonly local: string;
  readonly packages: readonly string[];
}

/** Bases for one folder (same machine, no shipped tree). */
export function sameBases(root: string): ModuleBases {
  return { local: root, packages: [root] };
}

/** Absolute file of a module reference on this machine. @throws ERR_MP_PACKAGE_MISSING, ERR_MP_PACKAGE_VERSION */
export function moduleFile(ref: ModuleRef, bases: ModuleBases): string | undefined {
  const base = bases.local;
  switch (ref.kind) {
    case 'builtin':
      return undefined;
    case 'local': {
      const file = resolve(base, ...ref.path.split('/'));
      if (!(file + sep).startsWith(resolve(base) + sep)) {
        throw new DecodeError('ERR_MP_BAD_MODULE_REF', `local module path '${ref.path}' leaves the project root`);
      }
      return file;
    }
    case 'file':
      return ref.path;
    case 'package': {
      let dir: string | undefined;
      for (const b of [...bases.packages, base]) if ((dir = findPackageDir(ref.name, b))) break;
      if (!dir) {
        throw new DecodeError('ERR_MP_PACKAGE_MISSING', `the payload needs package '${ref.name}' (version ${ref.version} on the sender), which is not installed under ${bases.packages.join(', ') || base}; install ${ref.name}@${ref.version}`);
      }
      let version = '0.0.0';
      try {
        version = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version?: string }).version ?? version;
      } catch {
        // keep the default
      }
      if (major(version) !== major(ref.version)) {
        throw new DecodeError('ERR_MP_PACKAGE_VERSION', `package '${ref.name}' is at version ${version} here but ${ref.version} on the sender (major versions differ); install ${ref.name}@${ref.version}`);
      }
      if (version !== ref.version) {
        process.emitWarning(`modulepickle: package '${ref.name}' is ${version} here, ${ref.version} on the sender`, { code: 'MP_PACKAGE_VERSION' });
      }
      const file = resolve(dir, ...ref.file.split('/'));
      if (!(file + sep).startsWith(dir + sep)) throw new DecodeError('ERR_MP_BAD_MODULE_REF', `package file '${ref.file}' leaves the package folder`);
      return file;
    }
  }
}

/**
 * Loads a module object: synchronously (returned directly) for builtins and CommonJS, as a Promise for ES modules.
 * @throws ERR_MP_MODULE_LOAD
 */
export function loadModule(ref: ModuleRef, base: ModuleBases): unknown {
  if (ref.kind === 'builtin') {
    const m = process.getBuiltinModule(`node:${ref.name}`);
    if (m === undefined) throw new DecodeError('ERR_MP_MODULE_LOAD', `builtin module node:${ref.name} does not exist in this Node.js ${process.version}`);
    return m;
  }
  const file = moduleFile(ref, base) as string;
  const fail = (cause: unknown): never => {
    throw new DecodeError('ERR_MP_MODULE_LOAD', `cannot load module ${describeModule(ref)} from ${file}: ${(cause as Error)?.message ?? String(cause)}`, undefined, { cause });
  };
  if (ref.esm) {
    const m = importOnce(pathToFileURL(file).href);
    return m instanceof Promise ? m.catch(fail) : m;
  }
  try {
    return require(file);
  } catch (cause) {
    return fail(cause);
  }
}

/** One module a payload needs; `namespace` asks for its ES module namespace (`import()`), not `require()`. */
export interface ModuleNeed {
  readonly module: ModuleRef;
  readonly namespace: boolean;
}

/** Key of a module need in the loaded-modules map. */
export function needKey(need: ModuleNeed): string {
  return (need.namespace ? 'ns:' : '') + moduleKey(need.module);
}

/** Loads every module of a list; the result maps `needKey` to module object. Sync when no ES module is needed. */
export function loadModules(needs: readonly ModuleNeed[], base: ModuleBases): Map<string, unknown> | Promise<Map<string, unknown>> {
  const out = new Map<string, unknown>();
  const pending: Promise<void>[] = [];
  for (const need of needs) {
    const key = needKey(need);
    if (out.has(key)) continue;
    let m: unknown;
    if (need.namespace) {
      const ref = need.module;
      const spec = ref.kind === 'builtin' ? `node:${ref.name}` : pathToFileURL(moduleFile(ref, base) as string).href;
      m = importOnce(spec);
    } else {
      m = loadModule(need.module, base);
    }
    if (m instanceof Promise) pending.push(m.then((v: unknown) => void out.set(key, v)));
    else out.set(key, m);
  }
  return pending.length ? Promise.all(pending).then(() => out) : out;
}

/** Esbuild-style interop view of a CommonJS exports object. */
function interopView(exportsObj: unknown): object {
  const view: Record<string, unknown> = Object.create(Object.getPrototypeOf(exportsObj ?? {}) as object | null) as Record<string, unknown>;
  if ((typeof exportsObj === 'object' || typeof exportsObj === 'function') && exportsObj !== null) {
    for (const k of Object.keys(exportsObj)) {
      Object.defineProperty(view, k, { get: () => (exportsObj as Record<string, unknown>)[k], enumerable: true });
    }
  }
  Object.defineProperty(view, 'default', { value: exportsObj, enumerable: true });
  return view;
}

const interopCache = new WeakMap<object, object>();

/** The value an export reference names, given the loaded modules. @throws ERR_MP_MODULE_EXPORT */
export function resolveExport(ref: ExportRef, loaded: ReadonlyMap<string, unknown>): unknown {
  const key = needKey({ module: ref.module, namespace: ref.view === 'namespace' });
  if (!loaded.has(key)) throw new DecodeError('ERR_MP_MODULE_NOT_LOADED', `module ${describeModule(ref.module)} was not loaded before decoding the value`);
  let m = loaded.get(key);
  if (ref.view === 'interop' && (typeof m === 'object' || typeof m === 'function') && m !== null) {
    let v = interopCache.get(m);
    if (!v) interopCache.set(m, (v = interopView(m)));
    m = v;
  }
  const v = walkPath(m, ref.path);
  if (v === undefined && ref.path.length) {
    throw new DecodeError('ERR_MP_MODULE_EXPORT', `module ${describeModule(ref.module)} has no export '${ref.path.join('.')}' here; the sender's copy of the module differs`);
  }
  return v;
}
