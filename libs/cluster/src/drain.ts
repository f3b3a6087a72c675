/**
 * The one drain path of a process: SIGTERM, SIGINT and a drain command (an actor call, e.g. from
 * the admin dashboard) all end up in {@link Drain.start}, which runs the process's drain procedure
 * once, bounded by the drain timeout, then its stop procedure, then exits.
 *
 * Timeline (Kubernetes): preStop hook → SIGTERM → drain (≤ `timeoutMs`) → stop → exit 0. The pod's
 * terminationGracePeriodSeconds must cover preStop + timeoutMs + the stop; after it the kubelet
 * sends SIGKILL. A second signal during a drain does not restart it (kubectl delete twice, Ctrl-C
 * twice); SIGINT twice exits at once with code 130.
 */
export interface DrainOptions {
  /** Longest drain; then `stop` runs anyway. */
  timeoutMs: number;
  /**
   * The role's drain: stop taking work, finish or hand over what is in flight. Gets the epoch-ms
   * deadline; should return by then (it is not awaited past it).
   */
  drain: (deadline: number) => Promise<void>;
  /** Release everything (deregister, close connections); runs after the drain, or its timeout. */
  stop: () => Promise<void>;
  /** @defaultValue process.exit */
  exit?: (code: number) => void;
  /** One line per event (start, timeout, done). @defaultValue stderr */
  log?: (line: string) => void;
}

export class Drain {
  private started: Promise<void> | null = null;
  private reason = '';
  private readonly exit: (code: number) => void;
  private readonly log: (line: string) => void;
  private handlers: { sig: NodeJS.Signals; fn: () => void }[] = [];

  constructor(private readonly opts: DrainOptions) {
    this.exit = opts.exit ?? ((code) => process.exit(code));
    this.log = opts.log ?? ((l) => process.stderr.write(`${l}\n`));
  }

  /** True from the first trigger on. */
  get draining(): boolean {
    return this.started !== null;
  }

  /** Why the drain started (signal or command), '' before. */
  get trigger(): string {
    return this.reason;
  }

  /** SIGTERM and SIGINT start the drain. */
  installSignalHandlers(): void {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      const fn = () => {
        if (this.draining && sig === 'SIGINT') {
          this.log('drain: second SIGINT, exiting now');
          this.exit(130);
          return;
        }
        void this.start(sig);
      };
      process.on(sig, fn);
      this.handlers.push({ sig, fn });
    }
  }

  /**
   * Starts the drain when this process's parent exits (the process is re-parented, so its
   * `ppid` changes), checked every `intervalMs`. For processes a local launcher started
   * (STARQ_EXIT_WITH_PARENT=1): a launcher that is killed leaves no actors behind.
   */
  watchParent(intervalMs = 1000): void {
    const parent = process.ppid;
    const t = setInterval(() => {
      if (process.ppid === parent) return;
      clearInterval(t);
      void this.start(`parent process ${parent} exited`);
    }, intervalMs);
    t.unref();
  }

  /** Starts the drain (once; later calls return the same promise), then stops and exits. */
  start(reason: string): Promise<void> {
    if (this.started) return this.started;
    this.reason = reason;
    this.started = this.run(reason);
    return this.started;
  }

  private async run(reason: string): Promise<void> {
    const t0 = Date.now();
    const deadline = t0 + this.opts.timeoutMs;
    this.log(`drain: started by ${reason}, timeout ${this.opts.timeoutMs} ms`);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), this.opts.timeoutMs)));
    let code = 0;
    try {
      const outcome = await Promise.race([this.opts.drain(deadline).then(() => 'done' as const), timedOut]);
      this.log(outcome === 'done' ? `drain: done in ${Date.now() - t0} ms` : `drain: timed out after ${this.opts.timeoutMs} ms; stopping with work in flight`);
    } catch (e) {
      code = 1;
      this.log(`drain: failed after ${Date.now() - t0} ms: ${(e as Error).stack ?? e}`);
    } finally {
      clearTimeout(timer);
    }
    try {
      await this.opts.stop();
    } catch (e) {
      code = 1;
      this.log(`drain: stop failed: ${(e as Error).message}`);
    }
    for (const h of this.handlers) process.off(h.sig, h.fn);
    this.log(`drain: exiting ${code} after ${Date.now() - t0} ms`);
    this.exit(code);
  }
}
