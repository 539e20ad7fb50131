/**
 * Side-effect module: installs the function and module layer into `defaultRegistry`.
 * Imported by `src/index.ts`, so `dumps`/`loads` handle functions, closures, classes and modules.
 */
import { defaultRegistry } from '../codec/index.ts';
import { installFunctionLayer } from './install.ts';

installFunctionLayer(defaultRegistry);
