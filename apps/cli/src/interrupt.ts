/**
 * SIGINT / SIGTERM while a command runs. The first signal aborts the command's `AbortSignal`
 * (waits on Redis, HTTP streams and polling loops reject with `InterruptedError`) and closes every
 * model engine of the process — each finishes the ORT call it is in, then its worker stops, and
 * the command's pending engine calls reject — so the command unwinds through its own `finally`
 * blocks (temporary models removed, clusters it started stopped). `main()` then exits with
 * 128 + the signal number: 130 for SIGINT, 143 for SIGTERM. Further signals while shutting down
 * are noted and otherwise ignored: stopping a worker inside an ORT call would abort the process.
 * A command that runs until stopped (`cluster up`) waits in `untilStopped()`: a signal from then
 * on is its normal end, and it exits 0 once it has stopped what it started.
 */
import { closeAllEngines } from '@starq/model/runtime/engine';
import { StarqError } from '@starq/protocol/errors';

/** The signals a command shuts down on, with the exit code each leads to. */
export const INTERRUPT_EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const;
export type InterruptSignal = keyof typeof INTERRUPT_EXIT_CODES;

/** The command was interrupted by a signal (what an aborted wait rejects with). */
export class InterruptedError extends StarqError {
  constructor(readonly signal: InterruptSignal) {
    super('interrupted', `interrupted by ${signal}`, { status: 500 });
  }
}

let current: CommandInterrupt | null = null;

/**
 * The abort signal of the running command (aborted on SIGINT/SIGTERM). Outside `main()` (e.g. a
 * test calling a command function directly) a signal that never aborts.
 */
export function interruptSignal(): AbortSignal {
  return current?.signal ?? new AbortController().signal;
}

/**
 * Resolves with the signal that stops a command which runs until stopped; from this call on, such
 * a signal is the command's normal end (exit 0 when it then finishes cleanly, not 130 / 143).
 */
export function untilStopped(): Promise<InterruptSignal> {
  const c = current;
  if (!c) return new Promise(() => undefined); // outside main(): nothing can stop it
  return c.untilStopped();
}

/** Resolves like `p`, or rejects with `InterruptedError` as soon as the command is interrupted. */
export function interruptible<T>(p: Promise<T>, signal: AbortSignal = interruptSignal()): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** Signal handling for one `main()` run: install at the start, `uninstall()` at the end. */
export class CommandInterrupt {
  private readonly controller = new AbortController();
  /** The first signal received, if any. */
  received: InterruptSignal | null = null;
  /** Settles when the engines closed on the signal have stopped. */
  private enginesClosed: Promise<void> = Promise.resolve();
  private readonly handlers: [InterruptSignal, () => void][];

  private constructor(private readonly log: (line: string) => void) {
    this.handlers = (Object.keys(INTERRUPT_EXIT_CODES) as InterruptSignal[]).map((sig) => [sig, () => this.onSignal(sig)]);
    for (const [sig, h] of this.handlers) process.on(sig, h);
  }

  static install(log: (line: string) => void = (l) => process.stderr.write(l)): CommandInterrupt {
    const c = new CommandInterrupt(log);
    current = c;
    return c;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Set when the command declared a signal its normal end (`untilStopped`) before one arrived. */
  private stopIsNormal = false;

  /** 130 (SIGINT) or 143 (SIGTERM) once a signal interrupted the command, else null. */
  get exitCode(): number | null {
    return this.received && !this.stopIsNormal ? INTERRUPT_EXIT_CODES[this.received] : null;
  }

  /** See the module function `untilStopped`. */
  untilStopped(): Promise<InterruptSignal> {
    if (this.received) return Promise.resolve(this.received); // interrupted before: stays 130 / 143
    this.stopIsNormal = true;
    return new Promise((resolve) => this.signal.addEventListener('abort', () => resolve(this.received!), { once: true }));
  }

  /** True when a signal interrupted the command (not when it was the end the command waited for). */
  get interrupted(): boolean {
    return this.received !== null && !this.stopIsNormal;
  }

  /** Waits for the engines the signal closed, removes the handlers. */
  async uninstall(): Promise<void> {
    await this.enginesClosed;
    for (const [sig, h] of this.handlers) process.off(sig, h);
    if (current === this) current = null;
  }

  private onSignal(sig: InterruptSignal): void {
    if (this.received) {
      this.log(`starq: ${sig}: already shutting down (engines finish their current call)\n`);
      return;
    }
    this.received = sig;
    this.log(`starq: ${sig}: shutting down\n`);
    this.controller.abort(new InterruptedError(sig));
    this.enginesClosed = closeAllEngines();
  }
}
