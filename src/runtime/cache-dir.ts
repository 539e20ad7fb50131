/**
 * Where modulepickle keeps its per-user cache: `MODULEPICKLE_CACHE`, else `$XDG_CACHE_HOME/modulepickle`,
 * else `~/Library/Caches/modulepickle` (macOS), `%LOCALAPPDATA%\modulepickle` (Windows) or `~/.cache/modulepickle`.
 */
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** The cache folder for this user (not created). `explicit` wins over the environment. */
export function defaultCacheDir(explicit?: string): string {
  if (explicit) return resolve(explicit);
  const env = process.env.MODULEPICKLE_CACHE;
  if (env) return resolve(env);
  if (process.env.XDG_CACHE_HOME) return join(process.env.XDG_CACHE_HOME, 'modulepickle');
  let home: string;
  try {
    home = homedir();
  } catch {
    return join(tmpdir(), `modulepickle-${process.getuid?.() ?? 'user'}`);
  }
  if (process.platform === 'darwin') return join(home, 'Library', 'Caches', 'modulepickle');
  if (process.platform === 'win32' && process.env.LOCALAPPDATA) return join(process.env.LOCALAPPDATA, 'modulepickle');
  return join(home, '.cache', 'modulepickle');
}
