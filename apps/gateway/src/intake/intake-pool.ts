/**
 * A pool of intake worker threads (intake-worker.ts): request bodies are parsed, validated and
 * tokenized there, so the gateway's event loop never runs the work whose cost grows with a
 * body's size (it only copies the bytes in and a few Int32Arrays out).
 *
 * Bounds on what one request can take:
 * - queue: at most `queueLimit` bodies wait for a worker; more get 503 `intake_busy` (Retry-After);
 * - time: a body a worker has held for `timeoutMs` gets 422 `tokenize_timeout`; the worker is
 *   terminated (the only way to stop a running tokenizer) and replaced;
 * - memory: each worker's V8 heap is capped at `memoryMb`; a body that exhausts it gets 422
 *   `tokenize_out_of_memory` and the worker is replaced.
 * Text that cannot fit the model's positions is refused before most of it is tokenized
 * (libs/model bounded-encode.ts), so the time and memory bounds are a backstop.
 */
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { StarqError } from '@starq/protocol';
import { HttpError } from '../http';
import type { IntakeResult, IntakeRoute } from './intake';
import type { IntakeRequest, IntakeResponse, IntakeWorkerData } from './intake-worker';

export interface IntakePoolOptions extends IntakeWorkerData {
  /** Worker threads. @defaultValue 1 */
  workers?: number;
  /** Bodies waiting for a worker above which new ones get 503. @defaultValue 64 */
  queueLimit?: number;
  /** Longest a worker may spend on one body. @defaultValue 30000 */
  timeoutMs?: number;
  /** V8 old-generation heap limit of each worker (MB). @defaultValue 1024 */
  memoryMb?: number;
}

interface Task {
  id: number;
  route: IntakeRoute;
  body: Uint8Array;
  resolve: (r: IntakeResult) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  task: Task | null;
  timer: NodeJS.Timeout | null;
  /** Set when the pool ended this worker on purpose (timeout, close). */
  retired: boolean;
}

const ENTRY = path.join(__dirname, 'intake-entry.js');

export class IntakePool {
  private readonly slots: Slot[] = [];
  private readonly queue: Task[] = [];
  private seq = 0;
  private closed = false;
  private readonly workers: number;
  private readonly queueLimit: number;
  private readonly timeoutMs: number;
  private readonly memoryMb: number;

  constructor(private readonly o: IntakePoolOptions) {
    this.workers = o.workers ?? 1;
    this.queueLimit = o.queueLimit ?? 64;
    this.timeoutMs = o.timeoutMs ?? 30000;
    this.memoryMb = o.memoryMb ?? 1024;
  }

  /** Starts the workers; resolves when every one has loaded the tokenizer. */
  async start(): Promise<void> {
    await Promise.all(Array.from({ length: this.workers }, () => this.spawn()));
  }

  /** Bodies waiting for a worker, and bodies being worked on (metrics). */
  get depth(): { waiting: number; running: number } {
    return { waiting: this.queue.length, running: this.slots.filter((s) => s.task !== null).length };
  }

  /**
   * Parse, validate and tokenize one body off the event loop.
   * @throws the body's own 4xx error (see intake.ts); HttpError 503 `intake_busy`, 422
   *   `tokenize_timeout` / `tokenize_out_of_memory` (see the file doc).
   */
  run(route: IntakeRoute, body: Buffer): Promise<IntakeResult> {
    if (this.closed) return Promise.reject(new HttpError(503, 'shutting_down', 'the gateway is shutting down: retry on another replica'));
    if (this.queue.length >= this.queueLimit) {
      return Promise.reject(
        new HttpError(503, 'intake_busy', `${this.queue.length} request bodies are waiting to be tokenized on this gateway, at its limit (STARQ_INTAKE_QUEUE): retry shortly`),
      );
    }
    // A Buffer may be a view on Node's shared pool: transfer only a buffer of its own.
    const own = body.byteOffset === 0 && body.buffer.byteLength === body.length ? new Uint8Array(body.buffer, 0, body.length) : Uint8Array.from(body);
    return new Promise<IntakeResult>((resolve, reject) => {
      this.queue.push({ id: ++this.seq, route, body: own, resolve, reject });
      this.dispatch();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.queue.splice(0)) t.reject(new HttpError(503, 'shutting_down', 'the gateway is shutting down: retry on another replica'));
    await Promise.all(
      this.slots.splice(0).map((s) => {
        s.retired = true;
        if (s.timer) clearTimeout(s.timer);
        s.task?.reject(new HttpError(503, 'shutting_down', 'the gateway is shutting down: retry on another replica'));
        return s.worker.terminate();
      }),
    );
  }

  private spawn(): Promise<void> {
    const worker = new Worker(ENTRY, {
      workerData: { modelDir: this.o.modelDir, vocabSize: this.o.vocabSize, maxPositions: this.o.maxPositions } satisfies IntakeWorkerData,
      resourceLimits: { maxOldGenerationSizeMb: this.memoryMb },
    });
    const slot: Slot = { worker, ready: false, task: null, timer: null, retired: false };
    this.slots.push(slot);
    return new Promise<void>((resolve, reject) => {
      worker.on('message', (m: IntakeResponse) => {
        if ('ready' in m) {
          slot.ready = true;
          resolve();
          this.dispatch();
          return;
        }
        const t = slot.task;
        if (!t || t.id !== m.id) return;
        this.settle(slot);
        if (m.ok) t.resolve(m.result);
        else t.reject(new StarqError(m.error.code, m.error.message, { param: m.error.param, status: m.error.status }));
        this.dispatch();
      });
      worker.on('error', (e: Error & { code?: string }) => {
        if (!slot.ready) reject(e);
        const t = slot.task;
        this.settle(slot);
        if (t) {
          t.reject(
            e.code === 'ERR_WORKER_OUT_OF_MEMORY'
              ? new HttpError(422, 'tokenize_out_of_memory', `tokenizing this request needed more than the gateway's ${this.memoryMb} MB per body (STARQ_INTAKE_MEMORY_MB): send a shorter text or token ids`, null)
              : new HttpError(500, 'intake_failed', `the intake worker failed: ${e.message}`),
          );
        }
      });
      worker.on('exit', () => {
        const t = slot.task;
        this.settle(slot);
        t?.reject(new HttpError(500, 'intake_failed', 'the intake worker exited while tokenizing this request'));
        const i = this.slots.indexOf(slot);
        if (i >= 0) this.slots.splice(i, 1);
        if (!slot.ready) reject(new Error('the intake worker exited during start-up'));
        if (!this.closed) void this.spawn().catch((err) => process.stderr.write(`gateway: intake worker failed to start: ${(err as Error).message}\n`));
      });
    });
  }

  private settle(slot: Slot): void {
    if (slot.timer) clearTimeout(slot.timer);
    slot.timer = null;
    slot.task = null;
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (!slot.ready || slot.task || slot.retired) continue;
      const t = this.queue.shift()!;
      slot.task = t;
      slot.timer = setTimeout(() => {
        if (slot.task !== t) return;
        this.settle(slot);
        slot.retired = true;
        t.reject(
          new HttpError(422, 'tokenize_timeout', `tokenizing this request took longer than the gateway's limit of ${this.timeoutMs} ms (STARQ_INTAKE_TIMEOUT_MS): send a shorter text or token ids`, null),
        );
        void slot.worker.terminate(); // its exit handler starts a replacement
      }, this.timeoutMs);
      const req: IntakeRequest = { id: t.id, route: t.route, body: t.body };
      slot.worker.postMessage(req, [t.body.buffer as ArrayBuffer]);
    }
  }
}
