/** `ctx.scratch` keys of the runtime layer (shared by name through `Symbol.for`). */

/** The materialized tree folder of the payload being decoded (a string); local module paths resolve in it. */
export const treeDirKey: unique symbol = Symbol.for('modulepickle.treeDir') as never;

/** The `TreeHandle` of the payload being decoded (id, manifest, release()). */
export const treeKey: unique symbol = Symbol.for('modulepickle.tree') as never;
