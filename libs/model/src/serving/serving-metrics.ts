/**
 * What the serving loop reports about itself: batch size over time, step latency, generated tokens
 * per second (total over a recent window, and per request in each result). Kept in bounded windows;
 * `snapshot()` is cheap enough to publish on every heartbeat.
 */

/** One phase-2 step of the running set. */
export interface StepRecord {
  /** Epoch ms when the step ended. */
  at: number;
  /** Requests in the step. */
  batch: number;
  /** New rows in the step (query-chunk rows + one per decoding request). */
  rows: number;
  /** Tokens sampled by the step. */
  tokens: number;
  ms: number;
}

export interface ServingSnapshot {
  running: number;
  waiting: number;
  /** Steps and generated tokens since start. */
  steps: number;
  tokens: number;
  /** Mean requests per step, p50 / p99 step latency (ms), generated tokens/s — over `windowMs`. */
  meanBatch: number;
  stepMsP50: number;
  stepMsP99: number;
  tokensPerSec: number;
  windowMs: number;
  /** Batch size of the most recent steps (oldest first), for a chart. */
  recentBatch: { at: number; batch: number }[];
}

export class ServingMetrics {
  private readonly window: StepRecord[] = [];
  private steps = 0;
  private tokens = 0;

  /**
   * @param windowMs span of the rolling window. @defaultValue 10000
   * @param maxRecords most steps kept in the window. @defaultValue 4096
   */
  constructor(
    readonly windowMs = 10000,
    readonly maxRecords = 4096,
  ) {}

  record(s: StepRecord): void {
    this.steps++;
    this.tokens += s.tokens;
    this.window.push(s);
    if (this.window.length > this.maxRecords) this.window.shift();
  }

  snapshot(running: number, waiting: number, now = Date.now()): ServingSnapshot {
    while (this.window.length > 0 && this.window[0].at < now - this.windowMs) this.window.shift();
    const w = this.window;
    const ms = w.map((s) => s.ms).sort((a, b) => a - b);
    const q = (p: number) => (ms.length === 0 ? 0 : ms[Math.min(ms.length - 1, Math.floor(p * ms.length))]);
    const span = w.length === 0 ? 0 : Math.max(1, now - (w[0].at - w[0].ms));
    return {
      running,
      waiting,
      steps: this.steps,
      tokens: this.tokens,
      meanBatch: w.length === 0 ? 0 : w.reduce((a, s) => a + s.batch, 0) / w.length,
      stepMsP50: q(0.5),
      stepMsP99: q(0.99),
      tokensPerSec: span === 0 ? 0 : (w.reduce((a, s) => a + s.tokens, 0) * 1000) / span,
      windowMs: this.windowMs,
      recentBatch: w.slice(-60).map((s) => ({ at: s.at, batch: s.batch })),
    };
  }
}
