/** Median and range of one figure over the repetitions of a measurement. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

export function spread(values: number[]): Spread {
  if (values.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN };
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const median =
    sorted.length % 2 === 1
      ? (sorted[middle] as number)
      : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
  return { median, min: sorted[0] as number, max: sorted[sorted.length - 1] as number };
}

/** Ratio of two medians, or null when either is missing. */
export function ratio(value: number | undefined, ceiling: number | undefined): number | null {
  if (value === undefined || ceiling === undefined || !Number.isFinite(value) || !Number.isFinite(ceiling)) return null;
  return ceiling > 0 ? value / ceiling : null;
}

/** Rounds for the JSON report: 3 significant decimals are more than the noise allows. */
export function round(value: number, digits = 2): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

export function formatRate(value: number): string {
  if (!Number.isFinite(value)) return '-';
  return value >= 100 ? Math.round(value).toLocaleString('en-US') : value.toFixed(1);
}

export function formatMs(value: number): string {
  if (!Number.isFinite(value)) return '-';
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}

export function formatSpread(s: Spread, format: (value: number) => string): string {
  return s.min === s.max ? format(s.median) : `${format(s.median)} [${format(s.min)}–${format(s.max)}]`;
}
