/** Registers the `ship` section into the default registry (imported once by `src/index.ts`). */
import { defaultRegistry } from '../codec/builtins.ts';
import { shipSection } from './section.ts';

if (!defaultRegistry.sections().some((s) => s.name === shipSection.name)) defaultRegistry.registerSection(shipSection);
