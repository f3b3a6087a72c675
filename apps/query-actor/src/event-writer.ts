/**
 * Writes request events to their Redis streams (`XADD <stream> MAXLEN ~ N * e <json>`), pipelined
 * off the decode path. `write` queues the event and returns at once with a promise of its write;
 * the queue is sent as one pipeline from a microtask — after the code that queued it (e.g. a serving
 * step's token callbacks for every running request) has run — so a step's tokens cost one round
 * trip together and the next step's engine call is already posted when they go out. Events queued
 * while a pipeline is in flight go in the next one, sent when it returns.
 *
 * Order: one pipeline in flight at a time and a pipeline's commands run in order, so events reach
 * each stream in the order written (a token before the `done` written after it).
 */
import type { Redis } from 'ioredis';

/** Stream length cap of every event stream (approximate, `MAXLEN ~`). @defaultValue 100000 */
export const EVENT_STREAM_MAXLEN = 100000;

interface Pending {
  key: string;
  data: string;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class EventWriter {
  private queue: Pending[] = [];
  private scheduled = false;
  private sending = false;
  /** Pipelines sent (a measure of coalescing: events written / pipelines). */
  pipelines = 0;
  /** Events written (ok or not). */
  events = 0;

  constructor(
    private readonly redis: Redis,
    private readonly maxLen = EVENT_STREAM_MAXLEN,
  ) {}

  /** Queues one event (`JSON.stringify(event)`) on stream `key`; resolves once Redis has it, rejects with Redis's error. */
  write(key: string, event: unknown): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ key, data: JSON.stringify(event), resolve, reject });
      this.schedule();
    });
  }

  /** Resolves once every event written so far has been sent and answered. */
  async flushed(): Promise<void> {
    while (this.queue.length > 0 || this.sending || this.scheduled) await new Promise<void>((r) => setImmediate(r));
  }

  private schedule(): void {
    if (this.scheduled || this.sending) return;
    this.scheduled = true;
    queueMicrotask(() => {
      this.scheduled = false;
      void this.send();
    });
  }

  private async send(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    this.sending = true;
    this.pipelines++;
    this.events += batch.length;
    const p = this.redis.pipeline();
    for (const b of batch) p.xadd(b.key, 'MAXLEN', '~', String(this.maxLen), '*', 'e', b.data);
    try {
      const res = await p.exec();
      batch.forEach((b, i) => {
        const err = res?.[i]?.[0];
        if (err) b.reject(err);
        else if (!res) b.reject(new Error('event pipeline was discarded'));
        else b.resolve();
      });
    } catch (err) {
      for (const b of batch) b.reject(err as Error);
    } finally {
      this.sending = false;
      if (this.queue.length > 0) this.schedule();
    }
  }
}
