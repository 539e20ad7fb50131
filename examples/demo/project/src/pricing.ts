// Local module 1: prices and tax. The demo edits TAX_RATE between two calls.
export const TAX_RATE = 0.2;

export interface Item {
  readonly sku: string;
  readonly price: number;
  readonly qty: number;
}

export function withTax(amount: number): number {
  return Math.round(amount * (1 + TAX_RATE) * 100) / 100;
}
