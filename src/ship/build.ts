/**
 * Builds the manifest of a project tree: walk, size limits (before hashing), stat cache, sha256 of the
 * rest, the versions of installed packages the tree declares, and the version id.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { ShipError } from '../errors.ts';
import { checkLimits, defaultMaxBytes, defaultMaxFileBytes } from './limits.ts';
import { manifestIdOf, serializeManifest, sha256Hex, type Manifest, type ManifestEntry } from './manifest.ts';
import { findProjectRoot, type RootReason } from './root.ts';
import { StatCache } from './stat-cache.ts';
import { walkProject, type WalkEntry } from './walk.ts';

/** Options of a manifest build (also the `ship` options of `dumps`, plus `root`). */
export interface BuildOptions {
  /** Project root. Default: detected from `from` (see `findProjectRoot`). */
  readonly root?: string;
  /** Where the code lives, for root detection. Default: the first of `extraFiles`, else the cwd. */
  readonly from?: string;
  /** gitignore-style patterns that ship even when ignored. */
  readonly include?: readonly string[];
  /** gitignore-style patterns that never ship. */
  readonly exclude?: readonly string[];
  /** Absolute paths of loaded local modules: they ship even when ignored. */
  readonly extraFiles?: Iterable<string>;
  /** Limit on the total bytes (default 256 MiB). */
  readonly maxBytes?: number;
  /** Limit on one file (default 32 MiB). */
  readonly maxFileBytes?: number;
  /** Cache folder for the stat cache (default: the user cache folder). */
  readonly cacheDir?: string;
  /** Use and update the persisted stat cache (default true). */
  readonly statCache?: boolean;
}

/** A built manifest and where each blob's bytes are on this machine. */
export interface ShipBuild {
  readonly root: string;
  readonly rootReason: RootReason;
  readonly manifest: Manifest;
  /** Canonical manifest text (what travels). */
  readonly text: string;
  /** Version id: sha256 of `text`. */
  readonly id: string;
  /** Blob hash → absolute path of a file with that content. */
  readonly files: ReadonlyMap<string, string>;
  readonly totalBytes: number;
  /** Files hashed in this build (the rest came from the stat cache). */
  readonly hashed: number;
  readonly skipped: readonly { rel: string; reason: string }[];
}

function firstOf(it: Iterable<string> | undefined): string | undefined {
  if (!it) return undefined;
  for (const x of it) return x;
  return undefined;
}

function installedVersion(root: string, fromDir: string, name: string): string | undefined {
  for (const base of [fromDir, root]) {
    try {
      const pkg = JSON.parse(readFileSync(join(base, 'node_modules', name, 'package.json'), 'utf8')) as { version?: unknown };
      if (typeof pkg.version === 'string') return pkg.version;
    } catch {
      // try the next folder
    }
  }
  return undefined;
}

/** Versions of the installed packages that the tree's package.json files declare (workspace links excluded). */
export function packageVersions(root: string, entries: readonly ManifestEntry[]): Record<string, string> {
  const out: Record<string, string> = {};
  const local = new Set(entries.filter((e) => e.kind === 'symlink' && e.path.startsWith('node_modules/')).map((e) => e.path.slice(13)));
  const pkgFiles = entries.filter((e) => e.kind === 'file' && (e.path === 'package.json' || e.path.endsWith('/package.json'))).slice(0, 200);
  for (const e of pkgFiles) {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(readFileSync(join(root, e.path), 'utf8')) as Record<string, unknown>;
    } catch {
      continue;
    }
    for (const field of ['dependencies', 'optionalDependencies', 'peerDependencies', 'devDependencies']) {
      const deps = json[field];
      if (!deps || typeof deps !== 'object') continue;
      for (const name of Object.keys(deps)) {
        if (local.has(name) || out[name] !== undefined) continue;
        const v = installedVersion(root, join(root, dirname(e.path)), name);
        if (v !== undefined) out[name] = v;
      }
    }
  }
  return out;
}

/** A walk entry turned into a manifest entry (from the stat cache or hashed now). */
export interface HashedEntry {
  readonly entry: ManifestEntry;
  /** Whether the file was read and hashed (not found in the stat cache). */
  readonly hashed: boolean;
}

/**
 * The manifest entry of one walk entry: the stat cache's hash when the stat is unchanged and not racily clean,
 * else the sha256 of the content read now (recorded in the cache unless a concurrent write moved the size).
 * @throws ERR_MP_SHIP_READ
 */
export function hashEntry(w: WalkEntry, cache: StatCache | undefined, hashedAt: number): HashedEntry {
  if (w.kind === 'symlink') return { entry: { path: w.rel, kind: 'symlink', target: w.target! }, hashed: false };
  const exec = (w.stat.mode & 0o111) !== 0;
  const cached = cache?.lookup(w.rel, w.stat);
  if (cached !== undefined) return { entry: { path: w.rel, kind: 'file', hash: cached, size: w.stat.size, exec }, hashed: false };
  let bytes: Buffer;
  try {
    bytes = readFileSync(w.abs);
  } catch (err) {
    throw new ShipError('ERR_MP_SHIP_READ', `cannot read '${w.rel}' to ship it (${(err as Error).message}); exclude it or fix its permissions`, w.rel, { cause: err });
  }
  const hash = sha256Hex(bytes);
  // A size that moved between stat and read means a concurrent write: ship what was read, cache nothing.
  if (bytes.length === w.stat.size) cache?.record(w.rel, w.stat, hash, hashedAt);
  return { entry: { path: w.rel, kind: 'file', hash, size: bytes.length, exec }, hashed: true };
}

/** Blob hash → absolute path of a file with that content. */
export function blobFiles(root: string, entries: readonly ManifestEntry[], absOf?: (rel: string) => string | undefined): Map<string, string> {
  const files = new Map<string, string>();
  const prefix = root.endsWith(sep) ? root : root + sep;
  for (const e of entries) if (e.kind === 'file' && !files.has(e.hash)) files.set(e.hash, absOf?.(e.path) ?? prefix + e.path.split('/').join(sep));
  return files;
}

/** What `assembleBuild` needs besides the sorted entries. */
export interface BuildParts {
  readonly root: string;
  readonly rootReason: RootReason;
  readonly entries: ManifestEntry[];
  readonly files: ReadonlyMap<string, string>;
  readonly totalBytes: number;
  readonly hashed: number;
  readonly skipped: readonly { rel: string; reason: string }[];
  /** Package versions when the caller knows they did not change (else read again). */
  readonly packages?: Record<string, string>;
}

/**
 * A build from its sorted entries: package versions, the canonical text and the version id (the previous build's
 * text and id of this root when nothing changed, so an unchanged tree is not serialized and hashed again).
 * @throws ERR_MP_SHIP_EMPTY
 */
export function assembleBuild(parts: BuildParts): ShipBuild {
  const { root, entries, skipped } = parts;
  if (!entries.some((e) => e.kind === 'file')) {
    const self = skipped.find((x) => x.rel === '.');
    if (self) throw new ShipError('ERR_MP_SHIP_EMPTY', `nothing to ship: the project root '${root}' itself ${self.reason.replace(/^never ships: /, 'is ')}; point the cache (MODULEPICKLE_CACHE, cacheDir) at a folder of its own, or pass another { root }`, '.');
    throw new ShipError(
      'ERR_MP_SHIP_EMPTY',
      `nothing to ship under '${root}' (every file is ignored); check .gitignore/.modulepickleignore or pass { ship: { include } }`,
    );
  }
  const packages = parts.packages ?? packageVersions(root, entries);
  const base = { root, rootReason: parts.rootReason, totalBytes: parts.totalBytes, hashed: parts.hashed, skipped, files: parts.files };
  // Nothing changed since this process's last build of the root: reuse its manifest, text and id.
  const prev = previous.get(root);
  if (prev && sameManifest(prev.manifest, entries, packages)) return { ...base, manifest: prev.manifest, text: prev.text, id: prev.id };
  const manifest: Manifest = { format: 1, entries, packages };
  const text = serializeManifest(manifest);
  const built = { manifest, text, id: manifestIdOf(text) };
  if (previous.size >= 64) previous.clear();
  previous.set(root, built);
  return { ...base, ...built };
}

/**
 * Builds the manifest of the project tree (a full walk; the stat cache spares rehashing unchanged files).
 * @throws ERR_MP_NO_ROOT, ERR_MP_SHIP_TOO_LARGE, ERR_MP_SHIP_FILE_TOO_LARGE, ERR_MP_SHIP_EMPTY, ERR_MP_SHIP_READ
 */
export function buildManifest(options: BuildOptions = {}): ShipBuild {
  const found = findProjectRoot(options.from ?? firstOf(options.extraFiles) ?? process.cwd(), options.root);
  const root = found.dir;
  const walked = walkProject(root, options);
  const totalBytes = checkLimits(walked.entries, options.maxBytes ?? defaultMaxBytes, options.maxFileBytes ?? defaultMaxFileBytes);
  const cache = options.statCache === false ? undefined : StatCache.open(root, options.cacheDir);
  const hashedAt = Date.now();
  const entries: ManifestEntry[] = [];
  const files = new Map<string, string>();
  let hashed = 0;
  for (const w of walked.entries) {
    const h = hashEntry(w, cache, hashedAt);
    if (h.hashed) hashed++;
    entries.push(h.entry);
    if (h.entry.kind === 'file' && !files.has(h.entry.hash)) files.set(h.entry.hash, w.abs);
  }
  cache?.save();
  return assembleBuild({ root, rootReason: found.reason, entries, files, totalBytes, hashed, skipped: walked.skipped });
}

const previous = new Map<string, { manifest: Manifest; text: string; id: string }>();

function sameManifest(m: Manifest, entries: readonly ManifestEntry[], packages: Record<string, string>): boolean {
  if (m.entries === entries) return JSON.stringify(m.packages) === JSON.stringify(packages);
  if (m.entries.length !== entries.length) return false;
  for (let i = 0; i < entries.length; i++) {
    const a = m.entries[i]!;
    const b = entries[i]!;
    if (a.path !== b.path || a.kind !== b.kind) return false;
    if (a.kind === 'file' && b.kind === 'file' ? a.hash !== b.hash || a.size !== b.size || a.exec !== b.exec : (a as { target?: string }).target !== (b as { target?: string }).target) return false;
  }
  return JSON.stringify(m.packages) === JSON.stringify(packages);
}
