import { defaultRegistry } from './builtins.ts';
import type { Reducer } from './registry.ts';

/**
 * Registers a reducer for instances of `ctor` in the default registry (both sides must register it).
 * @throws ERR_MP_REDUCER_EXISTS when the reducer's name is taken
 */
export function register<T extends object, A, S>(ctor: abstract new (...args: never[]) => T, reducer: Reducer<T, A, S>): void {
  defaultRegistry.register(ctor, reducer);
}
