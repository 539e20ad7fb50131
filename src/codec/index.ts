export { dumps, dumpsSync, loads, loadsSync } from './payload.ts';
export { defaultRegistry, builtinRegistry } from './builtins.ts';
export { Registry, reduceSymbol } from './registry.ts';
export type { Reducer, Reduction, ReducerOverride, ReduceContext, RestoreContext, Section } from './registry.ts';
export { RawBytes, type DumpOptions } from './encode.ts';
export type { OutOfBand } from './buffers.ts';
export type { LoadOptions } from './decode.ts';
export { FORMAT_VERSION } from './tags.ts';
