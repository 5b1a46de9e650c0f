// Small statistics over samples (numbers), for the bench's figures.

/** The p-th percentile (0-100) by nearest rank on a sorted copy; null for no samples. */
export function percentile(samples, p) {
  if (samples.length === 0) return null;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

export const median = (samples) => percentile(samples, 50);

/** Milliseconds since an arbitrary origin, sub-microsecond resolution. */
export const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/** Runs `fn` and returns [its result, milliseconds it took]. */
export async function timed(fn) {
  const start = nowMs();
  const result = await fn();
  return [result, nowMs() - start];
}
