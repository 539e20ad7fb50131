/**
 * Per-payload bookkeeping of the modules a payload references: the `modules` section lists them, and local files
 * are handed to the ship layer through `ctx.scratch`.
 */
import type { ReduceContext } from '../codec/registry.ts';
import { moduleFile, needKey, sameBases, type ModuleNeed } from '../modules/load.ts';
import type { ModuleRef } from '../modules/module-ref.ts';
import { projectRoot } from '../modules/project-root.ts';

import { localModulesKey } from '../ship/keys.ts';
export { treeDirKey } from '../runtime/keys.ts';
/** Scratch key (encode) of the modules a payload needs, by need key. */
export const moduleNeedsKey: unique symbol = Symbol.for('modulepickle.moduleNeeds') as never;
/** Scratch key (decode) of the loaded modules, by need key. */
export const loadedModulesKey: unique symbol = Symbol.for('modulepickle.loadedModules') as never;

/** Records that a payload references a module (and, for local files, that the file must ship). */
export function recordModule(ctx: ReduceContext, module: ModuleRef, namespace: boolean): void {
  let needs = ctx.scratch.get(moduleNeedsKey) as Map<string, ModuleNeed> | undefined;
  if (!needs) ctx.scratch.set(moduleNeedsKey, (needs = new Map()));
  const need: ModuleNeed = { module, namespace };
  const key = needKey(need);
  if (needs.has(key)) return;
  needs.set(key, need);
  recordShippedFile(ctx, module);
}

/** Records that a local module's file must ship with the payload (its tree), without the receiver loading it. */
export function recordShippedFile(ctx: ReduceContext, module: ModuleRef): void {
  if (module.kind === 'local') {
    let files = ctx.scratch.get(localModulesKey) as Set<string> | undefined;
    if (!files) ctx.scratch.set(localModulesKey, (files = new Set()));
    files.add(moduleFile(module, sameBases(projectRoot(ctx.options))) as string);
  }
}
