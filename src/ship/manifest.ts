/**
 * The manifest: what a version of the project tree is. Sorted POSIX relative paths with the
 * sha256, size and exec bit of each file, plus relative symlinks that stay inside the root.
 * Its wire form is one canonical JSON text; the sha256 of that text is the version id.
 * It never contains an absolute client path.
 */
import { createHash } from 'node:crypto';

/** A regular file in the tree. */
export interface FileEntry {
  readonly path: string;
  readonly kind: 'file';
  /** sha256 of the content, lowercase hex. */
  readonly hash: string;
  readonly size: number;
  readonly exec: boolean;
}

/** A symbolic link in the tree; `target` is relative and resolves inside the tree. */
export interface SymlinkEntry {
  readonly path: string;
  readonly kind: 'symlink';
  readonly target: string;
}

/** One entry of a manifest. */
export type ManifestEntry = FileEntry | SymlinkEntry;

/** A parsed manifest. `packages` maps installed package names to the versions the sender had. */
export interface Manifest {
  readonly format: 1;
  readonly entries: readonly ManifestEntry[];
  readonly packages: Readonly<Record<string, string>>;
}

/** Wire format version of the manifest text. */
export const manifestFormat = 1;

/** Orders paths by UTF-16 code units (JavaScript's default string order): the same on every host. */
export function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** sha256 of bytes, lowercase hex. */
export function sha256Hex(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** The canonical JSON text of a manifest (entries sorted, fixed key order). */
export function serializeManifest(m: Manifest): string {
  const entries = [...m.entries].sort((a, b) => comparePaths(a.path, b.path));
  const files = entries.map((e) => (e.kind === 'file' ? [e.path, e.exec ? 'x' : 'f', e.hash, e.size] : [e.path, 'l', e.target]));
  const packages = Object.keys(m.packages)
    .sort(comparePaths)
    .map((name) => [name, m.packages[name]]);
  return JSON.stringify({ format: manifestFormat, files, packages });
}

/** The version id of a manifest text: sha256 of the text, lowercase hex. */
export function manifestIdOf(text: string): string {
  return sha256Hex(text);
}

/** Unique blob hashes a manifest references, sorted. */
export function blobHashes(m: Manifest): string[] {
  const set = new Set<string>();
  for (const e of m.entries) if (e.kind === 'file') set.add(e.hash);
  return [...set].sort();
}

/** What changed between two manifests, by path. */
export interface ManifestDiff {
  readonly added: string[];
  readonly removed: string[];
  readonly changed: string[];
}

/** Paths added, removed and changed (content, exec bit or link target) from `a` to `b`. */
export function diffManifests(a: Manifest, b: Manifest): ManifestDiff {
  const before = new Map(a.entries.map((e) => [e.path, e]));
  const added: string[] = [];
  const changed: string[] = [];
  for (const e of b.entries) {
    const old = before.get(e.path);
    before.delete(e.path);
    if (!old) added.push(e.path);
    else if (entryKey(old) !== entryKey(e)) changed.push(e.path);
  }
  return { added, removed: [...before.keys()], changed };
}

function entryKey(e: ManifestEntry): string {
  return e.kind === 'file' ? `f:${e.hash}:${e.exec ? 1 : 0}` : `l:${e.target}`;
}

/** Whether a manifest has TypeScript sources that need a loader on the receiver. */
export function hasTypeScript(m: Manifest): boolean {
  return m.entries.some((e) => e.kind === 'file' && /\.(?:[cm]?ts|tsx)$/.test(e.path) && !/\.d\.[cm]?ts$/.test(e.path));
}
