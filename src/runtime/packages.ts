/**
 * Installed packages on the receiver: find one, and check that its major version matches the sender's.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ShipError } from '../errors.ts';
import { resolveNodeModules } from './node-modules.ts';

/** A package found in the receiver's node_modules. */
export interface InstalledPackage {
  readonly name: string;
  readonly version: string;
  readonly dir: string;
}

function compatible(a: string, b: string): boolean {
  const pa = /^(\d+)\.(\d+)/.exec(a);
  const pb = /^(\d+)\.(\d+)/.exec(b);
  if (!pa || !pb) return a === b;
  if (pa[1] !== pb[1]) return false;
  return pa[1] !== '0' || pa[2] === pb[2];
}

/**
 * Finds package `name` in the receiver's node_modules and checks it against the sender's version:
 * same major (same minor for 0.x). Call it before importing a package a payload references.
 * @throws ERR_MP_PACKAGE_MISSING when it is not installed, ERR_MP_PACKAGE_VERSION when the major differs
 */
export function checkPackage(name: string, senderVersion: string | undefined, options: { nodeModules?: string | false } = {}): InstalledPackage {
  const nm = resolveNodeModules(options.nodeModules);
  const wanted = senderVersion ? `${name}@${senderVersion}` : name;
  if (!nm) {
    throw new ShipError('ERR_MP_PACKAGE_MISSING', `shipped code needs package ${wanted} but this receiver has no node_modules folder; install it or pass { nodeModules }`, name);
  }
  let version: string;
  try {
    const pkg = JSON.parse(readFileSync(join(nm, name, 'package.json'), 'utf8')) as { version?: unknown };
    version = typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    throw new ShipError('ERR_MP_PACKAGE_MISSING', `shipped code needs package ${wanted} (the sender's version) but it is not installed in ${nm}; run \`npm install ${wanted}\` there or pass { nodeModules }`, name);
  }
  if (senderVersion && !compatible(senderVersion, version)) {
    throw new ShipError('ERR_MP_PACKAGE_VERSION', `shipped code was written against ${name}@${senderVersion} but this receiver has ${name}@${version} in ${nm}; install a matching major version`, name);
  }
  return { name, version, dir: join(nm, name) };
}
