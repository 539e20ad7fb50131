/** `ctx.scratch` keys of the ship layer (shared by name through `Symbol.for`, so every copy agrees). */

/**
 * Local modules a payload references: a `Set<string>` of absolute (real) file paths. The function layer
 * adds to it (through `localModulePath`); the ship section ships the tree when it is not empty.
 */
export const localModulesKey: unique symbol = Symbol.for('modulepickle.localModules') as never;

/** The project root (real path) chosen for this payload. */
export const projectRootKey: unique symbol = Symbol.for('modulepickle.projectRoot') as never;
