/**
 * Tree materialization: one folder per (receiver node_modules, manifest id), built from verified blobs
 * by hardlinks (copies when linking is impossible or the file is executable) in a temp folder that is
 * renamed into place. Racing processes each build their own temp folder; the first rename wins and the
 * others discard theirs. A killed extraction leaves only a temp folder, which the GC removes.
 *
 * Layout under the cache folder:
 *   blobs/ab/<sha256>                   verified, read-only blobs
 *   ns/<nm-key>/node_modules         -> the receiver's node_modules (bare imports of shipped code resolve here)
 *   ns/<nm-key>/trees/<id>/manifest.json, package.json (a stub that stops the package scope lookup), leases/
 *   ns/<nm-key>/trees/<id>/tree/        the shipped files
 *   tmp/                                extractions in progress, dying blobs and trees
 */
import { copyFileSync, chmodSync, existsSync, linkSync, mkdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { ShipError } from '../errors.ts';
import { manifestIdOf, type FileEntry, type Manifest } from '../ship/manifest.ts';
import type { BlobSource } from '../ship/blob-source.ts';
import { DiskBlobStore } from './blob-store.ts';
import { defaultCacheDir, ensureCacheDir } from './cache-dir.ts';
import { withCacheLock } from './cache-lock.ts';
import { checkManifest, type CheckedManifest, type ReceiveLimits } from './manifest-check.ts';
import { nodeModulesKey, resolveNodeModules } from './node-modules.ts';

/** Options of materialization (also `loads` options). */
export interface MaterializeOptions extends ReceiveLimits {
  /** Cache folder (default: `MODULEPICKLE_CACHE` or the user cache folder). */
  readonly cacheDir?: string;
  /** Where missing blobs come from (inline payload blobs, an executor channel, a shared store). */
  readonly blobSource?: BlobSource;
  /** The receiver's node_modules for bare imports of shipped code; false for none. Default: found from the cwd. */
  readonly nodeModules?: string | false;
}

/** A tree on disk. `dir` is the folder holding the shipped files. */
export interface MaterializedTree {
  readonly id: string;
  readonly dir: string;
  readonly wrapper: string;
  readonly cacheDir: string;
  readonly manifest: Manifest;
  /** Blobs fetched from the blob source for this call. */
  readonly fetched: number;
  /** Whether this call built the tree (false: it existed, or another process won the race). */
  readonly created: boolean;
}

interface Plan {
  readonly checked: CheckedManifest;
  readonly cacheDir: string;
  readonly nsDir: string;
  readonly wrapper: string;
  readonly nodeModules: string | undefined;
  readonly store: DiskBlobStore;
}

function plan(text: unknown, options: MaterializeOptions): Plan {
  const checked = checkManifest(text, options);
  const cacheDir = defaultCacheDir(options.cacheDir);
  const nodeModules = resolveNodeModules(options.nodeModules);
  const nsDir = join(cacheDir, 'ns', nodeModulesKey(nodeModules));
  try {
    mkdirSync(join(ensureCacheDir(cacheDir), 'tmp'), { recursive: true });
  } catch (err) {
    throw new ShipError('ERR_MP_CACHE_UNWRITABLE', `cannot write the modulepickle cache folder '${cacheDir}' (${(err as NodeJS.ErrnoException).code ?? 'error'}); set MODULEPICKLE_CACHE or the cacheDir option to a writable folder`, cacheDir, { cause: err });
  }
  return { checked, cacheDir, nsDir, wrapper: join(nsDir, 'trees', checked.id), nodeModules, store: new DiskBlobStore(cacheDir) };
}

function done(p: Plan, fetched: number, created: boolean): MaterializedTree {
  return { id: p.checked.id, dir: join(p.wrapper, 'tree'), wrapper: p.wrapper, cacheDir: p.cacheDir, manifest: p.checked.manifest, fetched, created };
}

function ensureNodeModulesLink(p: Plan): void {
  if (!p.nodeModules) return;
  const link = join(p.nsDir, 'node_modules');
  try {
    if (readlinkSync(link) === p.nodeModules) return;
  } catch {
    // absent
  }
  mkdirSync(p.nsDir, { recursive: true });
  const tmp = `${link}.${process.pid}.${randomBytes(4).toString('hex')}`;
  symlinkSync(p.nodeModules, tmp, 'dir');
  renameSync(tmp, link);
}

function sizesOf(m: Manifest): Map<string, number> {
  const sizes = new Map<string, number>();
  for (const e of m.entries) if (e.kind === 'file') sizes.set(e.hash, e.size);
  return sizes;
}

/** Stores fetched blobs after checking each against the manifest size and its hash. */
function storeFetched(p: Plan, got: ReadonlyMap<string, Uint8Array>, wanted: readonly string[]): number {
  const sizes = sizesOf(p.checked.manifest);
  const accepted = new Map<string, Uint8Array>();
  for (const h of wanted) {
    const bytes = got.get(h);
    if (!bytes) continue;
    if (bytes.byteLength !== sizes.get(h)) {
      throw new ShipError('ERR_MP_BLOB_SIZE_MISMATCH', `a shipped blob is ${bytes.byteLength} bytes but the manifest says ${sizes.get(h)} (blob ${h}); the payload or blob source is corrupt`, h);
    }
    accepted.set(h, bytes);
  }
  p.store.putSync(accepted);
  const still = p.store.missingSync(wanted);
  if (still.length) {
    throw new ShipError('ERR_MP_BLOB_MISSING', `${still.length} blob(s) of version ${p.checked.id.slice(0, 12)} are neither in the cache nor in the blob source (first: ${still[0]}); pass a blobSource that has them or ship the blobs inline`, still[0]);
  }
  return accepted.size;
}

/** Links (or copies) a blob into place; false when the blob is not in the store. */
function placeFile(src: string, dest: string, exec: boolean): 'linked' | 'copied' | 'missing' {
  if (!exec) {
    try {
      linkSync(src, dest);
      return 'linked';
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
      // other filesystem, link limit, or no permission: copy
    }
  }
  try {
    copyFileSync(src, dest);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw err;
  }
  chmodSync(dest, exec ? 0o555 : 0o444);
  return 'copied';
}

/** An extraction in progress: a temp folder under `<cache>/tmp`. */
interface Extraction {
  readonly work: string;
  readonly tree: string;
  readonly made: Set<string>;
  copied: number;
  placed: number;
}

function beginExtraction(p: Plan): Extraction {
  const work = join(p.cacheDir, 'tmp', `tree-${process.pid}-${randomBytes(6).toString('hex')}`);
  // Created under the lock so a GC never deletes blobs this extraction is about to link.
  withCacheLock(p.cacheDir, () => mkdirSync(join(work, 'tree'), { recursive: true }));
  return { work, tree: join(work, 'tree'), made: new Set(['']), copied: 0, placed: 0 };
}

function parentOf(x: Extraction, rel: string): void {
  const i = rel.lastIndexOf('/');
  const dir = i < 0 ? '' : rel.slice(0, i);
  if (x.made.has(dir)) return;
  mkdirSync(join(x.tree, dir), { recursive: true });
  for (let d = dir; d && !x.made.has(d); d = d.slice(0, Math.max(0, d.lastIndexOf('/')))) x.made.add(d);
}

/** Places files whose blob is in the store (linking is the existence check); returns the others. */
function placeFiles(p: Plan, x: Extraction, files: readonly FileEntry[]): FileEntry[] {
  const pause = process.env.MODULEPICKLE_TEST_EXTRACT_PAUSE;
  const missing: FileEntry[] = [];
  for (const e of files) {
    parentOf(x, e.path);
    // paths and hashes were validated by checkManifest: plain concatenation is safe (and cheaper than join)
    const r = placeFile(p.store.pathOfChecked(e.hash), `${x.tree}/${e.path}`, e.exec);
    if (r === 'missing') {
      missing.push(e);
      continue;
    }
    if (r === 'copied') x.copied++;
    // test hook: stop after two files (marker file written) so a test can kill the process mid-extraction
    if (pause && ++x.placed === 2) {
      writeFileSync(pause, x.work);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
    }
  }
  return missing;
}

/** Symlinks and metadata, then the rename into place. Returns whether this call's rename won. */
function finishExtraction(p: Plan, x: Extraction): boolean {
  for (const e of p.checked.manifest.entries) {
    if (e.kind !== 'symlink') continue;
    parentOf(x, e.path);
    symlinkSync(e.target, join(x.tree, e.path));
  }
  writeFileSync(join(x.work, 'package.json'), '{}\n');
  writeFileSync(join(x.work, 'meta.json'), JSON.stringify({ copied: x.copied, bytes: p.checked.totalBytes, created: Date.now() }));
  // manifest.json last: GC and tools read it; a complete tree is exactly a renamed folder.
  writeFileSync(join(x.work, 'manifest.json'), p.checked.text);
  mkdirSync(join(p.nsDir, 'trees'), { recursive: true });
  try {
    renameSync(x.work, p.wrapper);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') return false;
    throw err;
  }
}

function cleanup(x: Extraction): void {
  if (existsSync(x.work)) rmSync(x.work, { recursive: true, force: true });
}

const filesOf = (p: Plan): FileEntry[] => p.checked.manifest.entries.filter((e): e is FileEntry => e.kind === 'file');
const uniqueHashes = (files: readonly FileEntry[]): string[] => [...new Set(files.map((e) => e.hash))];

function placeFetched(p: Plan, x: Extraction, missing: readonly FileEntry[]): void {
  const still = placeFiles(p, x, missing);
  if (still.length) {
    const e = still[0]!;
    // Linking fails with ENOENT for a missing blob and for a missing destination folder alike: say which it was.
    const blob = p.store.pathOfChecked(e.hash);
    const why = !existsSync(blob) ? `blob ${e.hash} vanished from the cache (${blob})` : !existsSync(x.tree) ? `the extraction folder ${x.work} vanished` : `${e.path} could not be linked from ${blob}`;
    throw new ShipError('ERR_MP_BLOB_MISSING', `${why} during extraction; retry`, e.hash);
  }
}

/**
 * Materializes the tree of a manifest text: validates it, fetches missing blobs through `blobSource`
 * (only those the cache lacks), verifies them, and builds the tree atomically. Idempotent and safe
 * under concurrent processes.
 * @throws ERR_MP_MANIFEST_INVALID, ERR_MP_UNSAFE_PATH, ERR_MP_SYMLINK_ESCAPE, ERR_MP_MANIFEST_TOO_LARGE,
 *   ERR_MP_BLOB_HASH_MISMATCH, ERR_MP_BLOB_SIZE_MISMATCH, ERR_MP_BLOB_MISSING
 */
export async function materializeTree(text: unknown, options: MaterializeOptions = {}): Promise<MaterializedTree> {
  const p = plan(text, options);
  ensureNodeModulesLink(p);
  if (existsSync(p.wrapper)) return done(p, 0, false);
  const x = beginExtraction(p);
  try {
    const missing = placeFiles(p, x, filesOf(p));
    let fetched = 0;
    if (missing.length) {
      const wanted = uniqueHashes(missing);
      const got = options.blobSource ? await options.blobSource.get(wanted) : new Map<string, Uint8Array>();
      fetched = storeFetched(p, got, wanted);
      // A blob can go between storing and linking (another process's GC ran in between): fetch those once more.
      const gone = placeFiles(p, x, missing);
      if (gone.length && options.blobSource) {
        const again = uniqueHashes(gone);
        fetched += storeFetched(p, await options.blobSource.get(again), again);
      }
      if (gone.length) placeFetched(p, x, gone);
    }
    return done(p, fetched, finishExtraction(p, x));
  } finally {
    cleanup(x);
  }
}

/** Synchronous `materializeTree`: blobs come from `blobs` (e.g. inline payload blobs) or the cache. */
export function materializeTreeSync(text: unknown, blobs: ReadonlyMap<string, Uint8Array>, options: Omit<MaterializeOptions, 'blobSource'> = {}): MaterializedTree {
  const p = plan(text, options);
  ensureNodeModulesLink(p);
  if (existsSync(p.wrapper)) return done(p, 0, false);
  const x = beginExtraction(p);
  try {
    const missing = placeFiles(p, x, filesOf(p));
    let fetched = 0;
    if (missing.length) {
      fetched = storeFetched(p, blobs, uniqueHashes(missing));
      placeFetched(p, x, missing);
    }
    return done(p, fetched, finishExtraction(p, x));
  } finally {
    cleanup(x);
  }
}

const knownTrees = new Map<string, Manifest>();

/**
 * The tree of version `id` when it is already materialized in the cache (its manifest read from the tree's own
 * `manifest.json`, parsed once per process), else undefined. Used for payloads that name their version by id.
 * @throws ERR_MP_MANIFEST_INVALID when `id` is not a version id
 */
export function materializedTree(id: string, options: Pick<MaterializeOptions, 'cacheDir' | 'nodeModules'> = {}): MaterializedTree | undefined {
  if (!/^[0-9a-f]{64}$/.test(id)) throw new ShipError('ERR_MP_MANIFEST_INVALID', `the payload names its code version by a malformed id ${JSON.stringify(id.slice(0, 80))}; the payload is corrupt`);
  const cacheDir = defaultCacheDir(options.cacheDir);
  const nodeModules = resolveNodeModules(options.nodeModules);
  const nsDir = join(cacheDir, 'ns', nodeModulesKey(nodeModules));
  const wrapper = join(nsDir, 'trees', id);
  let manifest = knownTrees.get(wrapper);
  if (!manifest) {
    let text: string;
    try {
      text = readFileSync(join(wrapper, 'manifest.json'), 'utf8');
    } catch {
      return undefined;
    }
    // our own cache, written after the manifest was checked; the id must still match (a torn or foreign file does not)
    if (manifestIdOf(text) !== id) return undefined;
    manifest = checkManifest(text, { maxBytes: Number.MAX_SAFE_INTEGER, maxFileBytes: Number.MAX_SAFE_INTEGER, maxEntries: Number.MAX_SAFE_INTEGER }).manifest;
    if (knownTrees.size >= 64) knownTrees.clear();
    knownTrees.set(wrapper, manifest);
  }
  ensureNodeModulesLink({ nsDir, nodeModules } as Plan);
  return { id, dir: join(wrapper, 'tree'), wrapper, cacheDir, manifest, fetched: 0, created: false };
}

/** Renames a folder into the cache's tmp folder (so no half-deleted tree is ever visible); returns the new path. */
export function moveAside(cacheDir: string, dir: string): string | undefined {
  const aside = join(cacheDir, 'tmp', `trash-${process.pid}-${randomBytes(6).toString('hex')}`);
  mkdirSync(join(ensureCacheDir(cacheDir), 'tmp'), { recursive: true });
  try {
    renameSync(dir, aside);
    return aside;
  } catch {
    return undefined;
  }
}

/** Unlinks a file, ignoring a missing one. */
export function unlinkQuiet(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // gone
  }
}
