/**
 * Receiver-side validation of a manifest text from an untrusted payload: shape, path safety,
 * symlink escape, entry conflicts and size limits. Nothing is written before this passes.
 */
import { ShipError } from '../errors.ts';
import { checkRelPath, checkSymlinkTarget } from '../ship/path-rules.ts';
import { comparePaths, manifestIdOf, type Manifest, type ManifestEntry } from '../ship/manifest.ts';
import { defaultMaxBytes, defaultMaxFileBytes, formatBytes } from '../ship/limits.ts';

/** Limits a receiver applies to manifests. */
export interface ReceiveLimits {
  /** Largest total of file sizes (default 256 MiB, as on the client). */
  readonly maxBytes?: number;
  /** Largest single file (default 32 MiB). */
  readonly maxFileBytes?: number;
  /** Most entries (default 200,000). */
  readonly maxEntries?: number;
}

/** Default `maxEntries`. */
export const defaultMaxEntries = 200_000;

/** An npm package name (scoped or not); no path tricks. */
const packageNameRe = /^(?:@[a-z0-9][\w.~-]*\/)?[a-z0-9][\w.~-]*$/i;

/** Whether `h` is 64 lowercase hex digits (a loop: faster than a regex over many entries). */
function isHash(h: unknown): h is string {
  if (typeof h !== 'string' || h.length !== 64) return false;
  for (let i = 0; i < 64; i++) {
    const c = h.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

function invalid(detail: string, file?: string): ShipError {
  return new ShipError('ERR_MP_MANIFEST_INVALID', `the shipped manifest is malformed: ${detail}; the payload is corrupt or was not made by modulepickle`, file);
}

/** A validated manifest with its id. */
export interface CheckedManifest {
  readonly id: string;
  readonly text: string;
  readonly manifest: Manifest;
  readonly totalBytes: number;
}

/**
 * Parses and validates a manifest text. The id is recomputed from the text, never trusted.
 * @throws ERR_MP_MANIFEST_INVALID, ERR_MP_UNSAFE_PATH, ERR_MP_SYMLINK_ESCAPE, ERR_MP_MANIFEST_TOO_LARGE
 */
export function checkManifest(text: unknown, limits: ReceiveLimits = {}): CheckedManifest {
  if (typeof text !== 'string') throw invalid('not a string');
  const maxBytes = limits.maxBytes ?? defaultMaxBytes;
  const maxFileBytes = limits.maxFileBytes ?? defaultMaxFileBytes;
  const maxEntries = limits.maxEntries ?? defaultMaxEntries;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw invalid('not JSON');
  }
  if (!raw || typeof raw !== 'object') throw invalid('not an object');
  const { format, files, packages } = raw as Record<string, unknown>;
  if (format !== 1) throw invalid(`unknown format ${JSON.stringify(format)} (this receiver reads format 1; upgrade modulepickle)`);
  if (!Array.isArray(files)) throw invalid('files is not a list');
  if (files.length > maxEntries) {
    throw new ShipError('ERR_MP_MANIFEST_TOO_LARGE', `the shipped manifest has ${files.length} entries, over the receiver limit of ${maxEntries}; raise loads option maxEntries`);
  }
  const entries: ManifestEntry[] = [];
  const kinds = new Map<string, 'file' | 'symlink' | 'dir'>();
  let total = 0;
  let prev = '';
  for (const row of files as unknown[]) {
    if (!Array.isArray(row) || typeof row[0] !== 'string') throw invalid('an entry is not [path, kind, ...]');
    const path = row[0];
    const problem = checkRelPath(path);
    if (problem) throw new ShipError('ERR_MP_UNSAFE_PATH', `refused shipped path ${JSON.stringify(path)}: ${problem}`, path);
    if (entries.length && comparePaths(prev, path) >= 0) throw invalid(`entries not sorted or duplicated at ${JSON.stringify(path)}`, path);
    prev = path;
    // Every ancestor folder must be a folder (not a file or symlink): walk up until a known folder.
    for (let cut = path.lastIndexOf('/'); cut > 0; cut = path.lastIndexOf('/', cut - 1)) {
      const dir = path.slice(0, cut);
      const k = kinds.get(dir);
      if (k === 'dir') break;
      if (k === 'file' || k === 'symlink') {
        throw new ShipError('ERR_MP_UNSAFE_PATH', `refused shipped path ${JSON.stringify(path)}: it lies under the ${k} '${dir}'`, path);
      }
      kinds.set(dir, 'dir');
    }
    if (kinds.get(path) === 'dir') throw invalid(`'${path}' is both a folder and a file`, path);
    const kind = row[1];
    if (kind === 'f' || kind === 'x') {
      const [, , hash, size] = row as unknown[];
      if (row.length !== 4 || !isHash(hash)) throw invalid(`bad hash for '${path}'`, path);
      if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw invalid(`bad size for '${path}'`, path);
      if (size > maxFileBytes) {
        throw new ShipError('ERR_MP_MANIFEST_TOO_LARGE', `shipped file '${path}' is ${formatBytes(size)}, over the receiver limit of ${formatBytes(maxFileBytes)}; raise loads option maxFileBytes`, path);
      }
      total += size;
      if (total > maxBytes) {
        throw new ShipError('ERR_MP_MANIFEST_TOO_LARGE', `the shipped tree is over the receiver limit of ${formatBytes(maxBytes)}; raise loads option maxBytes`, path);
      }
      kinds.set(path, 'file');
      entries.push({ path, kind: 'file', hash, size, exec: kind === 'x' });
    } else if (kind === 'l') {
      const target = row[2];
      if (row.length !== 3 || typeof target !== 'string') throw invalid(`bad symlink '${path}'`, path);
      const escape = checkSymlinkTarget(path, target);
      if (escape) throw new ShipError('ERR_MP_SYMLINK_ESCAPE', `refused shipped symlink '${path}': ${escape}`, path);
      kinds.set(path, 'symlink');
      entries.push({ path, kind: 'symlink', target });
    } else {
      throw invalid(`unknown entry kind ${JSON.stringify(kind)} for '${path}'`, path);
    }
  }
  const pkgs: Record<string, string> = {};
  if (!Array.isArray(packages)) throw invalid('packages is not a list');
  for (const p of packages as unknown[]) {
    if (!Array.isArray(p) || typeof p[0] !== 'string' || typeof p[1] !== 'string') throw invalid('bad package entry');
    if (!packageNameRe.test(p[0]) || p[1].length > 256) throw invalid(`bad package name or version ${JSON.stringify(p[0])}`);
    pkgs[p[0]] = p[1];
  }
  return { id: manifestIdOf(text), text, manifest: { format: 1, entries, packages: pkgs }, totalBytes: total };
}
