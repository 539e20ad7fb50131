/**
 * Path rules shared by the client (never produce a manifest a receiver would refuse) and the
 * receiver (refuse hostile manifests). A path is POSIX, relative, normalized, without NUL or
 * backslash; a symlink target is relative and resolves strictly inside the tree.
 */
import { posix } from 'node:path';

/** Longest accepted path, in UTF-16 code units. */
export const maxPathLength = 4096;

/** Why `path` is not a safe manifest path, or undefined when it is. */
export function checkRelPath(path: string): string | undefined {
  if (typeof path !== 'string' || path.length === 0) return 'empty path';
  if (path.length > maxPathLength) return `path longer than ${maxPathLength} characters`;
  if (path.includes('\0')) return 'path contains a NUL character';
  if (path.includes('\\')) return 'path contains a backslash';
  if (path.charCodeAt(0) === 47) return 'absolute path';
  if (path.charCodeAt(1) === 58 && /^[A-Za-z]:/.test(path)) return 'path starts with a drive letter';
  // fast path: no segment can be '', '.' or '..' without one of these substrings
  const wrapped = `/${path}/`;
  if (!wrapped.includes('//') && !wrapped.includes('/./') && !wrapped.includes('/../')) return undefined;
  for (const seg of path.split('/')) {
    if (seg === '') return 'path has an empty segment';
    if (seg === '.' || seg === '..') return `path has a '${seg}' segment`;
  }
  return undefined;
}

/**
 * Why the symlink at `path` pointing at `target` is unsafe, or undefined when it is safe.
 * The target must resolve lexically to a strict descendant of the root; together with the rule that
 * no entry lies under a symlink, this keeps every real resolution inside the tree.
 */
export function checkSymlinkTarget(path: string, target: string): string | undefined {
  if (typeof target !== 'string' || target.length === 0) return 'empty symlink target';
  if (target.length > maxPathLength) return 'symlink target too long';
  if (target.includes('\0')) return 'symlink target contains a NUL character';
  if (target.includes('\\')) return 'symlink target contains a backslash';
  if (target.startsWith('/') || /^[A-Za-z]:/.test(target)) return `symlink target '${target}' is absolute`;
  const resolved = posix.normalize(posix.join(posix.dirname(path), target));
  if (resolved === '.' || resolved === '..' || resolved.startsWith('../') || resolved.startsWith('/')) {
    return `symlink target '${target}' escapes the tree`;
  }
  return undefined;
}
