/**
 * A progress line on stderr: a redrawn bar on a terminal, plain occasional lines otherwise, so
 * logs of non-interactive runs stay readable. Never writes to stdout (stdout is for results).
 */
export class Progress {
  private lastDraw = 0;
  private active = false;
  /** Elapsed time and ETA count from the bar's creation. */
  private readonly start = performance.now();

  constructor(private readonly out: NodeJS.WriteStream, private readonly label: string) {}

  update(done: number, total: number): void {
    const now = performance.now();
    if (done < total && now - this.lastDraw < (this.out.isTTY ? 100 : 2000)) return;
    this.lastDraw = now;
    const frac = total > 0 ? done / total : 1;
    const elapsed = (now - this.start) / 1000;
    const eta = frac > 0 ? elapsed * (1 / frac - 1) : 0;
    const line = `${this.label} ${done}/${total} ${(frac * 100).toFixed(0)}% ${elapsed.toFixed(1)}s elapsed, ETA ${eta.toFixed(1)}s`;
    if (this.out.isTTY) {
      const width = 24;
      const fill = Math.round(frac * width);
      this.out.write(`\r[${'#'.repeat(fill)}${'-'.repeat(width - fill)}] ${line}\x1b[K`);
      this.active = true;
    } else if (done < total || total > 1) {
      this.out.write(line + '\n');
    }
  }

  /** Finish the bar (idempotent). */
  done(): void {
    if (this.active && this.out.isTTY) this.out.write('\n');
    this.active = false;
  }
}
