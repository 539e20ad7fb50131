export { ModulePickleError, EncodeError, DecodeError, ShipError, RemoteError, WorkerError, formatPath } from './errors.ts';
export type { GraphPath, PathSegment } from './errors.ts';
export { dumps, dumpsSync, loads, loadsSync, defaultRegistry, Registry, reduceSymbol, RawBytes, FORMAT_VERSION } from './codec/index.ts';
export type { Reducer, Reduction, ReducerOverride, ReduceContext, RestoreContext, Section, DumpOptions, LoadOptions } from './codec/index.ts';
export { register } from './codec/register.ts';
