/** Samples, percentiles and timing helpers shared by every scenario. */

/** Latency samples reduced to the figures the report shows (milliseconds). */
export interface Summary {
  readonly samples: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly meanMs: number;
}

/** Percentile of sorted samples (nearest rank). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    samples: sorted.length,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    meanMs: sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length),
  };
}

/** Run `op` once and push its duration in milliseconds onto `samples`. */
export async function time(samples: number[], op: () => Promise<unknown>): Promise<void> {
  const start = performance.now();
  await op();
  samples.push(performance.now() - start);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Milliseconds with three decimals below 10 ms, one above. */
export function ms(value: number): string {
  if (!Number.isFinite(value)) return "-";
  return value < 10 ? value.toFixed(3) : value.toFixed(1);
}

export function bytes(value: number): string {
  if (value >= 1024 * 1024) return `${+(value / 1024 / 1024).toFixed(1)} MiB`;
  if (value >= 1024) return `${+(value / 1024).toFixed(1)} KiB`;
  return `${value} B`;
}

export function ratio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}x` : "-";
}
