/**
 * Peak resident memory of processes, from Linux's per-process high-water mark (`VmHWM` in
 * /proc/<pid>/status), which `resetPeakRss` sets back to the current RSS (writing "5" to
 * /proc/<pid>/clear_refs, Linux ≥ 4.0; needs write access to that file — own processes or root).
 * A benchmark resets the mark of every process it measures before a cell and reads it after, so the
 * figure is the cell's own peak, not the process's lifetime peak.
 */
import fs from 'node:fs';

export class PeakRssUnavailableError extends Error {
  constructor(pid: number, reason: string) {
    super(`cannot read the peak RSS of pid ${pid}: ${reason} (needs Linux /proc/<pid>/status VmHWM)`);
    this.name = 'PeakRssUnavailableError';
  }
}

/** Peak RSS of `pid` in bytes since its last reset (or its start). */
export function peakRssBytes(pid: number = process.pid): number {
  return statusKb(pid, 'VmHWM') * 1024;
}

function statusKb(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch (e) {
    throw new PeakRssUnavailableError(pid, (e as Error).message);
  }
  const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(text);
  if (!m) throw new PeakRssUnavailableError(pid, `no ${field} line`);
  return Number(m[1]);
}

/** Current RSS of `pid` in bytes (`VmRSS`). */
export function rssBytes(pid: number = process.pid): number {
  return statusKb(pid, 'VmRSS') * 1024;
}

/** Reset `pid`'s high-water mark to its current RSS. Returns false when the kernel refuses. */
export function resetPeakRss(pid: number = process.pid): boolean {
  try {
    fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}
