/**
 * The `ship` payload section (rank 10). Encode: when the body referenced local modules (the function layer
 * calls `localModulePath`, which records them in `ctx.scratch[localModulesKey]`), build the manifest of the
 * project tree and attach it with its blobs (`ship.blobs: 'inline'`, the default) or without them
 * (`'none'`: an executor sends the blobs the receiver lacks). Decode: materialize the tree (blobs from the
 * payload, then from `loads` option `blobSource`), lease it, register a TypeScript loader when the tree
 * needs one, and put the tree folder in `ctx.scratch[treeDirKey]`.
 */
import { dirname, join, relative, sep } from 'node:path';
import { randomBytes } from 'node:crypto';
import { RawBytes } from '../codec/encode.ts';
import type { ReduceContext, RestoreContext, Section } from '../codec/registry.ts';
import { DecodeError, ShipError } from '../errors.ts';
import { InlineBlobSource, ProjectBlobSource, type BlobSource } from './blob-source.ts';
import { buildManifest, type BuildOptions, type ShipBuild } from './build.ts';
import { watchedBuild, type WatchOption } from './tree-watch.ts';
import { blobHashes, hasTypeScript, manifestIdOf } from './manifest.ts';
import { findProjectRoot, isLocalPath } from './root.ts';
import { projectRoot } from '../modules/project-root.ts';
import { localLoadedModules, realModulePath } from './loaded-modules.ts';
import { treeDirKey, treeKey } from '../runtime/keys.ts';
import { localModulesKey, projectRootKey } from './keys.ts';
import { openTree, openTreeById, openTreeSync, type GcSchedule, type TreeHandle } from '../runtime/leases.ts';
import { ensureTypeScriptLoader, typeScriptLoaderActive } from '../runtime/loader.ts';
import type { MaterializeOptions } from '../runtime/materialize.ts';

/** `dumps` option `ship`. */
export interface ShipOptions {
  readonly include?: readonly string[];
  readonly exclude?: readonly string[];
  readonly maxBytes?: number;
  readonly maxFileBytes?: number;
  /** 'inline' (default): the payload carries every blob. 'none': only the manifest (the receiver gets blobs elsewhere). */
  readonly blobs?: 'inline' | 'none';
  /**
   * With `blobs: 'none'`: 'id' carries the manifest by its version id alone (64 hex digits instead of ~100 bytes per
   * file); the receiver uses its materialized tree of that version, or fetches the manifest text from its
   * `blobSource` by that id (the id is the text's sha256, so it is verified like a blob). Executors whose blob
   * server serves manifests set it. Default 'inline'.
   */
  readonly manifest?: 'inline' | 'id';
  /** More local files to ship even when ignored (e.g. ESM modules the caller loaded). */
  readonly extraFiles?: Iterable<string>;
  /** Also ship every local module in `require.cache` (default true). */
  readonly loadedModules?: boolean;
  /** Called with the build (manifest, id, where each blob is): executors use it to serve missing blobs. */
  readonly onBuild?: (build: ShipBuild) => void;
  /**
   * Called with what the section was made from, so that a caller that keeps the payload can ask later, with
   * {@link currentShipBuild}, which version a fresh `dumps` would ship (executors' call templates).
   */
  readonly onStamp?: (stamp: ShipStamp) => void;
  /** Cache folder of the stat cache (default: the user cache folder). */
  readonly cacheDir?: string;
  /**
   * Keep the tree watched between calls of `dumps` (default true): an unchanged call then costs no walk. false: the
   * full check on every call. `{ maxFolders }` caps the folders watched (more: the full check, with one warning).
   */
  readonly watch?: WatchOption;
}

/** The section's data value. */
interface ShipData {
  /** The manifest text; absent when the payload names the version by `id` only. */
  readonly manifest?: string;
  readonly id?: string;
  readonly blobs?: readonly (readonly [string, Uint8Array])[];
  /** Random token of the process that made the payload (never a path). */
  readonly origin?: string;
}

/**
 * This process's origin token, and the roots of the versions it shipped. A payload decoded by the very process
 * that made it resolves local modules to the original files: the modules it references are the ones this
 * process has loaded, so identity is kept (as cloudpickle's by-reference pickles do), and nothing is copied.
 */
const originToken = randomBytes(16).toString('hex');
const originRoots = new Map<string, string>();

function shipOptions(ctx: { readonly options: Readonly<Record<string, unknown>> }): ShipOptions {
  const s = ctx.options.ship;
  return s && typeof s === 'object' ? (s as ShipOptions) : {};
}

/**
 * The project root of the payload being encoded, chosen once and kept in `ctx.scratch[projectRootKey]` so
 * that every layer computes local module paths against the same folder: option `root`, else detected from
 * `hint` (a file of the code), else from the cwd. Call it before computing a `{ kind: 'local', path }`.
 * @throws ERR_MP_NO_ROOT
 */
export function payloadRoot(ctx: { readonly scratch: Map<unknown, unknown>; readonly options: Readonly<Record<string, unknown>> }, hint?: string): string {
  let root = ctx.scratch.get(projectRootKey) as string | undefined;
  if (root === undefined) {
    // The same root the function layer classified modules against; `hint` only when that root lacks it.
    root = projectRoot(ctx.options);
    if (hint !== undefined && typeof ctx.options.root !== 'string' && !isLocalPath(root, realModulePath(hint))) {
      root = findProjectRoot(hint).dir;
    }
    ctx.scratch.set(projectRootKey, root);
  }
  return root;
}

/**
 * Records a local module the payload references and returns its POSIX path relative to the payload root.
 * The function/modules layer calls this from `reduce`; the ship section then ships the tree.
 * @throws ERR_MP_NO_ROOT, ERR_MP_OUTSIDE_ROOT when the file is not local code under the root
 */
export function localModulePath(ctx: ReduceContext, file: string): string {
  const real = realModulePath(file);
  const root = payloadRoot(ctx, dirname(real));
  if (!isLocalPath(root, real) || real === root) {
    throw new ShipError('ERR_MP_OUTSIDE_ROOT', `module '${real}' is outside the project root '${root}' (or inside node_modules), so it cannot ship; set { root } to a folder that contains it`, real);
  }
  let set = ctx.scratch.get(localModulesKey) as Set<string> | undefined;
  if (!set) ctx.scratch.set(localModulesKey, (set = new Set()));
  set.add(real);
  return relative(root, real).split(sep).join('/');
}

export interface ShipInputs {
  readonly opts: ShipOptions;
  readonly root: string;
  readonly refs: string[];
  readonly build: BuildOptions & { readonly root: string; readonly extraFiles: string[]; readonly watch?: WatchOption };
}

/** What the section ships from, or undefined when the payload references no local module. */
function shipInputs(ctx: ReduceContext): ShipInputs | undefined {
  if (ctx.options.ship === false) return undefined;
  const referenced = ctx.scratch.get(localModulesKey) as Set<string> | undefined;
  if (!referenced || referenced.size === 0) return undefined;
  const opts = shipOptions(ctx);
  const root = payloadRoot(ctx, [...referenced][0]!);
  const refs = [...referenced].map((f) => {
    const real = realModulePath(f);
    if (!isLocalPath(root, real) || real === root) {
      throw new ShipError('ERR_MP_OUTSIDE_ROOT', `module '${real}' is outside the project root '${root}' (or inside node_modules), so it cannot ship; set { root } to a folder that contains it`, real);
    }
    return real;
  });
  const cacheDir = opts.cacheDir ?? (typeof ctx.options.cacheDir === 'string' ? ctx.options.cacheDir : undefined);
  return inputsOf(opts, root, refs, cacheDir);
}

/** The build inputs now: the referenced modules, the extra files, and every local module loaded so far. */
function inputsOf(opts: ShipOptions, root: string, refs: string[], cacheDir: string | undefined): ShipInputs {
  const extra = [...refs, ...(opts.extraFiles ?? []), ...(opts.loadedModules === false ? [] : localLoadedModules(root))];
  return { opts, root, refs, build: { ...opts, root, extraFiles: extra, cacheDir } };
}

/** What a ship section was made from (see `onStamp`). */
export interface ShipStamp {
  readonly build: ShipBuild;
  readonly input: ShipInputs;
}

/**
 * The build a fresh `dumps` of the stamped payload would ship now, reported to `onBuild` as that `dumps` would
 * (the tree watch makes this cost what changed). Executors pickle with `blobs: 'none'`; with inline blobs this
 * reads them again, as that `dumps` would.
 * @throws the build's ShipErrors
 */
export async function currentShipBuild(stamp: ShipStamp): Promise<ShipBuild> {
  const { opts, root, refs, build } = stamp.input;
  const input = inputsOf(opts, root, refs, build.cacheDir);
  const now = await watchedBuild(input.build);
  finishShip(input, now, () => buildManifest(input.build));
  return now;
}

/** Paths of each build, computed once per build object (an unchanged tree reuses its build). */
const shippedPaths = new WeakMap<ShipBuild, Set<string>>();

function finishShip(input: ShipInputs, build: ShipBuild, rebuild: () => ShipBuild): ShipData {
  const { opts, refs } = input;
  let blobs: Map<string, Uint8Array> | undefined;
  if (opts.blobs !== 'none') {
    try {
      blobs = new ProjectBlobSource(build).getSync(blobHashes(build.manifest));
    } catch (err) {
      // a file was edited between hashing and reading: build once more (a second edit race is reported)
      if (!(err instanceof ShipError && err.code === 'ERR_MP_SHIP_CHANGED')) throw err;
      build = rebuild();
      blobs = new ProjectBlobSource(build).getSync(blobHashes(build.manifest));
    }
  }
  let shipped = shippedPaths.get(build);
  if (!shipped) shippedPaths.set(build, (shipped = new Set(build.manifest.entries.map((e) => e.path))));
  for (const file of refs) {
    const rel = relative(build.root, file).split(sep).join('/');
    if (shipped.has(rel)) continue;
    const why = build.skipped.find((s) => s.rel === rel)?.reason;
    throw new ShipError('ERR_MP_SHIP_MISSING_MODULE', `referenced module '${rel}' is not in the shipped tree (${why ?? 'excluded by ship.exclude'}); ${why ? 'reference a module outside that folder' : 'remove it from ship.exclude'}`, rel);
  }
  opts.onBuild?.(build);
  opts.onStamp?.({ build, input });
  if (originRoots.size >= 1000) originRoots.clear();
  originRoots.set(build.id, build.root);
  if (!blobs) return opts.manifest === 'id' ? { id: build.id, origin: originToken } : { manifest: build.text, origin: originToken };
  return { manifest: build.text, origin: originToken, blobs: [...blobs].map(([h, b]) => [h, new RawBytes(b) as unknown as Uint8Array] as const) };
}

/** `dumpsSync`: the full check of the tree (a walk and a stat per file; the stat cache spares rehashing). */
function encodeShip(ctx: ReduceContext): ShipData | undefined {
  const input = shipInputs(ctx);
  if (!input) return undefined;
  return finishShip(input, buildManifest(input.build), () => buildManifest(input.build));
}

/** `dumps`: the watched tree (waits for pending file events, then costs what changed); nothing to wait for without local modules. */
function encodeShipAsync(ctx: ReduceContext): Promise<ShipData | undefined> | undefined {
  const input = shipInputs(ctx);
  if (!input) return undefined;
  return watchedBuild(input.build).then((build) => finishShip(input, build, () => buildManifest(input.build)));
}

function parseData(data: unknown): { manifest: string | undefined; id: string | undefined; inline: Map<string, Uint8Array>; origin: unknown } {
  const d = data as ShipData;
  if (!d || typeof d !== 'object') throw new DecodeError('ERR_MP_BAD_VALUE', "the 'ship' section is malformed (no manifest)");
  const byId = d.manifest === undefined && typeof d.id === 'string';
  if (!byId && typeof d.manifest !== 'string') throw new DecodeError('ERR_MP_BAD_VALUE', "the 'ship' section is malformed (no manifest)");
  if (byId && !/^[0-9a-f]{64}$/.test(d.id!)) throw new DecodeError('ERR_MP_BAD_VALUE', "the 'ship' section is malformed (a bad version id)");
  const inline = new Map<string, Uint8Array>();
  if (d.blobs !== undefined) {
    if (!Array.isArray(d.blobs)) throw new DecodeError('ERR_MP_BAD_VALUE', "the 'ship' section is malformed (blobs)");
    for (const b of d.blobs as unknown[]) {
      if (!Array.isArray(b) || typeof b[0] !== 'string' || !(b[1] instanceof Uint8Array)) throw new DecodeError('ERR_MP_BAD_VALUE', "the 'ship' section is malformed (a blob)");
      inline.set(b[0], b[1]);
    }
  }
  return { manifest: byId ? undefined : d.manifest, id: byId ? d.id : undefined, inline, origin: d.origin };
}

/** Inline blobs first, then the caller's blob source. */
class LayeredBlobSource implements BlobSource {
  constructor(readonly first: BlobSource, readonly then: BlobSource | undefined) {}
  async missing(hashes: readonly string[]): Promise<string[]> {
    const rest = await this.first.missing(hashes);
    return this.then ? this.then.missing(rest) : rest;
  }
  async get(hashes: readonly string[]): Promise<Map<string, Uint8Array>> {
    const got = await this.first.get(hashes);
    const rest = hashes.filter((h) => !got.has(h));
    if (rest.length && this.then) for (const [h, b] of await this.then.get(rest)) got.set(h, b);
    return got;
  }
}

function receiveOptions(ctx: RestoreContext): Omit<MaterializeOptions, 'blobSource'> & GcSchedule {
  const o = ctx.options;
  const num = (k: string) => (typeof o[k] === 'number' ? (o[k] as number) : undefined);
  return {
    cacheDir: typeof o.cacheDir === 'string' ? o.cacheDir : undefined,
    nodeModules: typeof o.nodeModules === 'string' || o.nodeModules === false ? (o.nodeModules as string | false) : undefined,
    maxBytes: num('maxBytes'),
    maxFileBytes: num('maxFileBytes'),
    maxEntries: num('maxEntries'),
    cacheMaxBytes: o.cacheMaxBytes === false ? false : num('cacheMaxBytes'),
  };
}

function finish(tree: TreeHandle, ctx: RestoreContext, nodeModules: string | false | undefined): void | Promise<void> {
  ctx.scratch.set(treeDirKey, tree.dir);
  ctx.scratch.set(treeKey, tree);
  if (hasTypeScript(tree.manifest) && !typeScriptLoaderActive()) return ensureTypeScriptLoader({ nodeModules, tsconfig: join(tree.dir, 'tsconfig.json') });
  return undefined;
}

function decodeShip(data: unknown, ctx: RestoreContext): void | Promise<void> {
  const { manifest, id, inline, origin } = parseData(data);
  if (origin === originToken && ctx.options.materialize !== 'always') {
    const root = originRoots.get(id ?? manifestIdOf(manifest!));
    if (root !== undefined) {
      ctx.scratch.set(treeDirKey, root);
      return undefined;
    }
  }
  const opts = receiveOptions(ctx);
  const source = ctx.options.blobSource as BlobSource | undefined;
  if (id !== undefined) {
    const tree = openTreeById(id, opts);
    if (tree) return finish(tree, ctx, opts.nodeModules);
    if (!source) {
      throw new ShipError('ERR_MP_BLOB_MISSING', `the payload names its code version ${id.slice(0, 12)} by id, and this receiver has neither that version nor a blobSource to fetch its manifest from; pickle without ship.manifest: 'id', or pass loads option blobSource`, id);
    }
    return fetchManifest(source, id).then((text) => openTree(text, { ...opts, blobSource: new LayeredBlobSource(new InlineBlobSource(inline), source) })).then((tree) => finish(tree, ctx, opts.nodeModules));
  }
  if (!source) return finish(openTreeSync(manifest, inline, opts), ctx, opts.nodeModules);
  const layered = new LayeredBlobSource(new InlineBlobSource(inline), source);
  return openTree(manifest, { ...opts, blobSource: layered }).then((tree) => finish(tree, ctx, opts.nodeModules));
}

/** The manifest text of version `id` from a blob source, verified against the id (its sha256). */
async function fetchManifest(source: BlobSource, id: string): Promise<string> {
  const bytes = (await source.get([id])).get(id);
  if (!bytes) throw new ShipError('ERR_MP_BLOB_MISSING', `the manifest of code version ${id.slice(0, 12)} is neither in this receiver's cache nor in its blob source; the sender may have changed or closed`, id);
  const text = new TextDecoder().decode(bytes);
  if (manifestIdOf(text) !== id) throw new ShipError('ERR_MP_BLOB_HASH_MISMATCH', `the manifest fetched for code version ${id.slice(0, 12)} does not match its id; the blob source is corrupt`, id);
  return text;
}

/** The `ship` section: rank 10, carries code. */
export const shipSection: Section = { name: 'ship', rank: 10, code: true, encode: encodeShip, encodeAsync: encodeShipAsync, decode: decodeShip };
