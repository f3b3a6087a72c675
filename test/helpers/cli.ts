/** Run the real `starq` command line (`node bin/starq …`) from end-to-end tests. */
import { execFile } from 'child_process';
import * as path from 'path';

export const ROOT = path.resolve(__dirname, '..', '..');

export interface Run {
  /** Exit code (null when killed by a signal, e.g. the timeout). */
  code: number | null;
  stdout: string;
  stderr: string;
}

export function starq(args: string[], timeoutMs = 120_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'bin', 'starq'), ...args], { cwd: ROOT, timeout: timeoutMs, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
    });
  });
}

/** Runs every job with at most `limit` processes at once. */
export async function pool<K extends string>(jobs: Record<K, string[]>, limit: number, timeoutMs?: number): Promise<Record<K, Run>> {
  const keys = Object.keys(jobs) as K[];
  const out = {} as Record<K, Run>;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < keys.length) {
      const k = keys[next++];
      out[k] = await starq(jobs[k], timeoutMs);
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  return out;
}
