/**
 * The process entry of `bin/starq`. A command line longer than onnxruntime tolerates (see
 * libs/model/src/runtime/command-line.ts: ORT's telemetry runs a recursive regex over
 * /proc/self/cmdline and overflows a worker thread's stack at ~14 KB) is never seen by a process
 * that loads ORT: the launcher re-executes `bin/starq` with a short argv and hands the arguments
 * over a pipe (file descriptor 3), forwards SIGINT/SIGTERM/SIGHUP to the child and exits with the
 * child's code. Long inputs also have file and stdin forms (`--context-ids-file F`, `-` = stdin).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { closeAllEngines } from '@starq/model/runtime/engine';
import { commandLineBytes, ORT_SAFE_COMMAND_LINE_BYTES } from '@starq/model/runtime/command-line';
import { main } from './main';

/**
 * Set (to a file descriptor number) only on the re-executed child: its arguments are JSON on that
 * descriptor. Internal to the launcher; removed from the environment before the command runs.
 */
export const ARGV_FD_ENV = 'STARQ_ARGV_FD';

/** Signal handlers bin/starq installed before this module loaded; replaced once a handler of ours is in place. */
export type EarlySignalHandlers = Partial<Record<NodeJS.Signals, () => void>>;

/** Runs `starq` with this process's arguments: in this process, or re-executed when argv is long. */
export function launch(binPath: string, early: EarlySignalHandlers = {}): void {
  const fd = process.env[ARGV_FD_ENV];
  if (fd !== undefined) {
    delete process.env[ARGV_FD_ENV];
    runCli(readArgs(Number(fd)), early);
  } else if (commandLineBytes() > ORT_SAFE_COMMAND_LINE_BYTES) {
    relaunch(binPath, process.argv.slice(2), early);
  } else {
    runCli(process.argv.slice(2), early);
  }
}

/** Runs `main`, then exits with its code; an error nothing caught still stops the engines first. */
export function runCli(argv: string[], early: EarlySignalHandlers = {}): void {
  const fatal = (e: unknown) => {
    process.stderr.write(`starq: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    void closeAllEngines().finally(() => process.exit(1));
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
  const run = main(argv); // installs the command's SIGINT/SIGTERM handlers before its first await
  removeEarly(early);
  void run.then((code) => process.exit(code), fatal);
}

function removeEarly(early: EarlySignalHandlers): void {
  for (const [sig, h] of Object.entries(early)) if (h) process.off(sig, h);
}

function readArgs(fd: number): string[] {
  const text = fs.readFileSync(fd, 'utf8');
  fs.closeSync(fd);
  const args = JSON.parse(text) as unknown;
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) throw new Error(`${ARGV_FD_ENV}: expected a JSON array of strings`);
  return args;
}

/** Re-execute `bin/starq` with a short argv; the arguments travel over fd 3 as JSON. */
function relaunch(binPath: string, args: string[], early: EarlySignalHandlers): void {
  const child = spawn(process.execPath, [...process.execArgv, binPath], {
    stdio: ['inherit', 'inherit', 'inherit', 'pipe'],
    env: { ...process.env, [ARGV_FD_ENV]: '3' },
  });
  const pipe = child.stdio[3] as NodeJS.WritableStream;
  pipe.on('error', () => undefined); // the child exited early: its exit code says why
  pipe.end(JSON.stringify(args));
  const forward = (sig: NodeJS.Signals) => () => {
    if (child.exitCode === null && child.signalCode === null) child.kill(sig);
  };
  const handlers = (['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((sig) => [sig, forward(sig)] as const);
  for (const [sig, h] of handlers) process.on(sig, h);
  removeEarly(early);
  child.on('error', (e) => {
    process.stderr.write(`starq: internal error: cannot re-execute ${binPath}: ${e.message}\n`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    for (const [sig, h] of handlers) process.off(sig, h);
    if (signal) process.kill(process.pid, signal); // die the same way, so callers see the signal
    else process.exit(code ?? 1);
  });
}
