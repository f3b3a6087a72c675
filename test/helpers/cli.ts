/** Run the real `starq` command line (`node bin/starq …`) from end-to-end tests. */
import { execFile, spawn, type ChildProcess } from 'child_process';
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

/** A `starq` process run to completion with optional stdin; records how it ended. */
export interface SpawnedRun extends Run {
  /** The signal that killed it, when one did (a clean exit has null). */
  signal: NodeJS.Signals | null;
}

/**
 * Starts `node bin/starq …` (stdin from `input`, else closed) and returns the child and a promise of
 * its end. `onStderr` sees stderr as it arrives (e.g. to send a signal once work has started).
 */
export function spawnStarq(args: string[], opts: { input?: string; onStderr?: (all: string) => void; timeoutMs?: number } = {}): { proc: ChildProcess; done: Promise<SpawnedRun> } {
  const proc = spawn(process.execPath, [path.join(ROOT, 'bin', 'starq'), ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  proc.stderr!.on('data', (b: Buffer) => {
    stderr += b.toString();
    opts.onStderr?.(stderr);
  });
  proc.stdin!.on('error', () => undefined);
  proc.stdin!.end(opts.input ?? '');
  const timer = setTimeout(() => proc.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
  const done = new Promise<SpawnedRun>((resolve) => {
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { proc, done };
}
