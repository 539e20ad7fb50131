export { ModulePickleError, EncodeError, DecodeError, ShipError, RemoteError, WorkerError, formatPath } from './errors.ts';
export type { GraphPath, PathSegment } from './errors.ts';
export { Registry, reduceSymbol } from './codec/registry.ts';
export type { Reducer, Reduction, ReducerOverride, ReduceContext, RestoreContext } from './codec/registry.ts';
export * from './ship/index.ts';
export * from './runtime/index.ts';
