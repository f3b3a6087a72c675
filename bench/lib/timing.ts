/** Small timing helpers for benchmarks. */

export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Run `fn` and return its duration in milliseconds. */
export async function timeMs(fn: () => Promise<unknown> | unknown): Promise<number> {
  const t0 = nowMs();
  await fn();
  return nowMs() - t0;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Progress line on stderr (stdout is reserved for the result table). */
export function progress(msg: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
}
