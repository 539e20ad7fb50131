// Local module 2: uses the first one.
import { withTax, type Item } from './pricing.ts';

export function total(items: readonly Item[]): { items: number; total: number } {
  const net = items.reduce((sum, it) => sum + it.price * it.qty, 0);
  return { items: items.length, total: withTax(net) };
}
