/**
 * Why a long command line crashes onnxruntime, and the guard that turns the crash into an error.
 *
 * onnxruntime (the Linux build onnxruntime-node ships) links Microsoft's 1DS telemetry client. When
 * the ORT environment is created — the first session of the process — that client collects system
 * facts, among them an app id: it reads all of `/proc/self/cmdline` and runs
 * `std::regex_search(contents, std::regex("(.*)[ ]*.*[\n]*"))` on it. libstdc++'s regex executor is
 * a recursive backtracking matcher that nests a few stack frames per character `.` matches (every
 * byte but `\n` and `\r`, NULs included), so its stack depth grows with the command line. The
 * 4 MiB stack of a Node worker thread overflows at about 14.4 KB of argv (the 8 MiB main thread
 * between 20 and 30 KB): SIGSEGV, exit 139. Environment variables are not read, a command line broken by
 * newlines every few KB does not crash, and `process.title` does not help (the kernel still reports
 * the whole argv area, padded with NULs, which `.` matches).
 *
 * Hence: the `starq` launcher keeps long arguments out of the argv of any process that loads ORT
 * (bin/starq re-executes itself and hands the arguments over a pipe), and every engine checks the
 * command line before it starts a worker, so that a process that would crash gets an error instead.
 */
import fs from 'node:fs';
import { StarqError } from '@starq/protocol/errors';

/**
 * Largest `/proc/self/cmdline` (bytes) with which ORT may be loaded: half the ~14.4 KB at which a
 * worker thread's 4 MiB stack overflows.
 */
export const ORT_SAFE_COMMAND_LINE_BYTES = 7 * 1024;

/** ORT would crash in this process: its command line is too long (see the module comment). */
export class CommandLineTooLongError extends StarqError {
  constructor(bytes: number) {
    super(
      'command_line_too_long',
      `this process's command line is ${bytes} bytes; onnxruntime crashes (stack overflow in its telemetry's regex over /proc/self/cmdline) above ~14 KB in a worker thread, ` +
        `so engines refuse to start above ${ORT_SAFE_COMMAND_LINE_BYTES} bytes: pass long inputs in files or on stdin (the starq CLI re-executes itself with a short command line)`,
      { param: null, status: 500 },
    );
  }
}

/** Bytes of this process's command line as the kernel reports it (0 where /proc is unavailable). */
export function commandLineBytes(): number {
  try {
    return fs.readFileSync('/proc/self/cmdline').length;
  } catch {
    return 0;
  }
}

/** Throws `CommandLineTooLongError` when loading ORT in this process could crash it. */
export function assertOrtSafeCommandLine(): void {
  const bytes = commandLineBytes();
  if (bytes > ORT_SAFE_COMMAND_LINE_BYTES) throw new CommandLineTooLongError(bytes);
}
