/**
 * `ModelEngine`: the main-thread handle of a model executor running in a worker thread. Every call
 * is asynchronous and leaves the event loop free while ORT computes (Redis I/O, heartbeats and
 * BullMQ locks keep flowing). Calls on one engine run one at a time, in order.
 *
 * Restart semantics: if the worker dies, every pending and later call rejects with
 * `EngineDiedError` and the KV caches it held are lost; create a new engine.
 *
 * Shutdown: `close()` never stops the worker inside an ORT call. Terminating a worker thread
 * while `InferenceSession.run` executes makes onnxruntime-node's binding throw a C++
 * `Napi::Error` it cannot hand back to the dying JavaScript context, and the whole process aborts
 * (exit 134, `terminate called after throwing an instance of 'Napi::Error'`); `process.exit()` stops
 * busy workers the same way. So `close()` refuses new calls at once, waits for the calls in flight
 * to answer, then has the worker exit from its own event loop, between two tasks. Every engine a process starts is tracked
 * until closed: `closeAllEngines()` is the exit path's safety net (the CLI calls it before it exits,
 * on success, error and SIGINT/SIGTERM).
 */
import path from 'node:path';
import { Worker, type MessagePort, type TransferListItem } from 'node:worker_threads';
import type { AttendRequest, GroupedQuery, Partial, RowGroup } from '@starq/attention';
import { StarqError } from '@starq/protocol/errors';
import type { ModelConfig } from '../types';
import type { ExecutorOptions, ExecutorStats, ForwardRequest, QkvOut } from './executor';
import type { SerializedError, WorkerRequest, WorkerResponse } from './worker';
import { EXIT_OP, START_MODULE_OP } from './worker-exit';
import { assertOrtSafeCommandLine } from './command-line';

/** Options of a {@link ModelEngine}: the executor's, plus a test hook. */
export interface EngineOptions extends ExecutorOptions {
  /**
   * Test hook (never set it in production): block the worker thread for this many ms at the start
   * of every context-encoding `forward` (one that returns no logits), as a slow machine would. It
   * lets a test watch an actor during a multi-second encode on any machine, and only holds the
   * worker thread: if compute ever ran on the main thread, the caller would stall too.
   * @defaultValue 0
   */
  testEncodeDelayMs?: number;
}

export class EngineDiedError extends Error {
  constructor(reason: string) {
    super(`model worker died (${reason}); its KV caches are lost — create a new ModelEngine`);
    this.name = 'EngineDiedError';
  }
}

/** Error raised in the worker, rebuilt on this side (keeps code/param for StarqErrors). */
function rebuildError(e: SerializedError): Error {
  if (e.code) {
    const err = new StarqError(e.code, e.message, { param: e.param, status: e.status ?? 400 });
    Object.defineProperty(err, 'name', { value: e.name });
    return err;
  }
  const err = new Error(e.message);
  err.name = e.name;
  if (e.stack) err.stack = e.stack;
  return err;
}

/** Engines started and not yet closed, in this process. */
const live = new Set<ModelEngine>();

/**
 * Close every engine of this process that is still open (each waits for its calls in flight; see
 * `ModelEngine.close`). Resolves when all their workers have stopped.
 */
export async function closeAllEngines(): Promise<void> {
  await Promise.all([...live].map((e) => e.close()));
}

/** Engines of this process not yet closed (0 once every owner shut its engines down). */
export function liveEngineCount(): number {
  return live.size;
}

export class ModelEngine {
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private dead: Error | null = null;
  private exited = false;
  private closing: Promise<void> | null = null;
  /** Woken whenever the last call in flight answers. */
  private idleWaiters: (() => void)[] = [];

  private constructor(readonly config: ModelConfig, readonly modelDir: string) {
    assertOrtSafeCommandLine();
    this.worker = new Worker(path.join(__dirname, 'worker-entry.js'));
    live.add(this);
    this.worker.on('message', (msg: WorkerResponse) => {
      const p = this.pending.get(msg.id);
      if (!p) return;
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.result);
      else p.reject(rebuildError(msg.error));
      if (this.pending.size === 0) this.wakeIdle();
    });
    const die = (reason: string) => {
      this.dead ??= new EngineDiedError(reason);
      for (const p of this.pending.values()) p.reject(new EngineDiedError(reason));
      this.pending.clear();
      this.wakeIdle();
    };
    this.worker.on('error', (e) => die(e.message));
    this.worker.on('exit', (code) => {
      this.exited = true;
      live.delete(this);
      die(`exit code ${code}`);
    });
  }

  /** Start a worker and load the model directory into it (weights never cross the thread boundary). */
  static async load(modelDir: string, config: ModelConfig, opts: EngineOptions = {}): Promise<ModelEngine> {
    const engine = new ModelEngine(config, modelDir);
    try {
      await engine.call('load', modelDir, opts);
    } catch (e) {
      await engine.close();
      throw e;
    }
    return engine;
  }

  forward(req: ForwardRequest): Promise<Float32Array | null> {
    return this.call('forward', req) as Promise<Float32Array | null>;
  }
  embed(ids: Int32Array): Promise<Float32Array> {
    return this.call('embed', ids) as Promise<Float32Array>;
  }
  qkv(layer: number, x: Float32Array, positions: Int32Array): Promise<QkvOut> {
    return this.call('qkv', layer, x, positions) as Promise<QkvOut>;
  }
  post(layer: number, x: Float32Array, attn: Float32Array): Promise<Float32Array> {
    return this.call('post', layer, x, attn) as Promise<Float32Array>;
  }
  head(x: Float32Array): Promise<Float32Array> {
    return this.call('head', x) as Promise<Float32Array>;
  }
  attendCache(cacheId: string, layer: number, q: Float32Array, qpos: Int32Array): Promise<Partial> {
    return this.call('attendCache', cacheId, layer, q, qpos) as Promise<Partial>;
  }
  attendCaches(cacheIds: string[], layer: number, q: Float32Array, qpos: Int32Array): Promise<Partial> {
    return this.call('attendCaches', cacheIds, layer, q, qpos) as Promise<Partial>;
  }
  /** Batched host attend: one partial per item (see `ModelExecutor.attendMany`). */
  attendMany(items: AttendRequest[]): Promise<Partial[]> {
    return this.call('attendMany', items) as Promise<Partial[]>;
  }
  /** q/k/v of stacked row groups, K/V appended per group, own partial per group (see `ModelExecutor.queryLayer`). */
  queryLayer(layer: number, x: Float32Array, groups: RowGroup[]): Promise<GroupedQuery> {
    return this.call('queryLayer', layer, x, groups) as Promise<GroupedQuery>;
  }
  /** post(layer) then queryLayer(layer + 1) in one worker call (see `ModelExecutor.postQueryLayer`). */
  postQueryLayer(layer: number, x: Float32Array, attn: Float32Array, groups: RowGroup[]): Promise<GroupedQuery & { x: Float32Array }> {
    return this.call('postQueryLayer', layer, x, attn, groups) as Promise<GroupedQuery & { x: Float32Array }>;
  }
  qkvAppend(cacheId: string, layer: number, x: Float32Array, positions: Int32Array): Promise<QkvOut> {
    return this.call('qkvAppend', cacheId, layer, x, positions) as Promise<QkvOut>;
  }
  attendKv(q: Float32Array, qpos: Int32Array, k: Float32Array, v: Float32Array, kpos: Int32Array): Promise<Partial> {
    return this.call('attendKv', q, qpos, k, v, kpos) as Promise<Partial>;
  }
  appendKv(cacheId: string, layer: number, k: Float32Array, v: Float32Array, positions: Int32Array, from = 0): Promise<void> {
    return this.call('appendKv', cacheId, layer, k, v, positions, from) as Promise<void>;
  }
  createCache(id: string, reserve = 0): Promise<void> {
    return this.call('createCache', id, reserve) as Promise<void>;
  }
  hasCache(id: string): Promise<boolean> {
    return this.call('hasCache', id) as Promise<boolean>;
  }
  dropCache(id: string): Promise<boolean> {
    return this.call('dropCache', id) as Promise<boolean>;
  }
  cacheInfo(id: string): Promise<{ tokens: number; bytes: number }> {
    return this.call('cacheInfo', id) as Promise<{ tokens: number; bytes: number }>;
  }
  truncateCache(id: string, tokens: number): Promise<void> {
    return this.call('truncateCache', id, tokens) as Promise<void>;
  }
  listCaches(): Promise<{ id: string; tokens: number; bytes: number }[]> {
    return this.call('listCaches') as Promise<{ id: string; tokens: number; bytes: number }[]>;
  }
  stats(): Promise<ExecutorStats> {
    return this.call('stats') as Promise<ExecutorStats>;
  }

  /**
   * Loads `modulePath` in the engine's worker thread and runs its `setupWorkerModule({ executor,
   * data })` there (worker-module.ts); resolves with what it returns. `transfer` lists what in
   * `data` moves to the worker (e.g. MessagePorts). The module lives as long as the worker.
   */
  startWorkerModule<R = unknown>(modulePath: string, data: unknown, transfer: readonly (MessagePort | ArrayBuffer)[] = []): Promise<R> {
    return this.callWith(START_MODULE_OP, [modulePath, data], transfer) as Promise<R>;
  }

  /** False once the worker has died or been closed (every call then rejects with `EngineDiedError`). */
  get alive(): boolean {
    return this.dead === null;
  }

  /**
   * Stop the worker; its caches are freed. From the first call on, new calls reject with
   * `EngineDiedError`; the calls already in flight finish (their results are delivered), then the
   * worker exits from its own event loop. Idempotent: every call returns the same promise.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.dead ??= new EngineDiedError('closed');
    while (this.pending.size > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    if (!this.exited) {
      // The worker leaves by itself, from its own event loop: between two tasks, so never inside
      // an ORT call (work an op left behind, e.g. a sibling of a failed Promise.all, is dropped).
      const gone = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
      const msg: WorkerRequest = { id: 0, op: EXIT_OP, args: [] };
      this.worker.postMessage(msg);
      await gone;
    }
    live.delete(this);
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private call(op: string, ...args: unknown[]): Promise<unknown> {
    return this.callWith(op, args, []);
  }

  private callWith(op: string, args: unknown[], transfer: readonly (MessagePort | ArrayBuffer)[]): Promise<unknown> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const msg: WorkerRequest = { id, op, args };
      this.worker.postMessage(msg, transfer as TransferListItem[]);
    });
  }
}
