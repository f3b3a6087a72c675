/**
 * Worker-thread side of `ModelEngine`: owns one `ModelExecutor` and answers `{id, op, args}`
 * messages with `{id, ok, result | error}`. Typed arrays in results are transferred, not copied.
 * A failing call answers with the error; the worker keeps serving.
 */
import { parentPort } from 'node:worker_threads';
import { StarqError } from '@starq/protocol/errors';
import { loadModelDir } from '../weights';
import type { EngineOptions } from './engine';
import { ModelExecutor, type ForwardRequest } from './executor';
import { EXIT_OP, START_MODULE_OP } from './worker-exit';
import type { WorkerModuleSetup } from './worker-module';

export interface WorkerRequest {
  id: number;
  op: string;
  args: unknown[];
}

export type WorkerResponse =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: SerializedError };

export interface SerializedError {
  name: string;
  message: string;
  code: string | null;
  param: string | null;
  status: number | null;
  stack?: string;
}

/** Executor methods callable from the main thread. */
export const EXECUTOR_OPS = [
  'forward',
  'embed',
  'qkv',
  'post',
  'head',
  'attendCache',
  'attendCaches',
  'attendMany',
  'queryLayer',
  'postQueryLayer',
  'qkvAppend',
  'attendKv',
  'appendKv',
  'createCache',
  'hasCache',
  'dropCache',
  'cacheInfo',
  'listCaches',
  'truncateCache',
] as const;
export type ExecutorOp = (typeof EXECUTOR_OPS)[number];

let executor: ModelExecutor | null = null;
/** `EngineOptions.testEncodeDelayMs` of this worker's engine. */
let encodeDelayMs = 0;

/** Blocks this thread (not only its event loop) for `ms`, as a long computation would. */
function blockThread(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

async function handle(op: string, args: unknown[]): Promise<unknown> {
  if (op === 'load') {
    const [dir, { testEncodeDelayMs, ...opts }] = args as [string, EngineOptions];
    const { config, weights } = loadModelDir(dir);
    executor = await ModelExecutor.create(config, weights, opts);
    encodeDelayMs = testEncodeDelayMs ?? 0;
    return null;
  }
  if (op === START_MODULE_OP) {
    if (!executor) throw new Error('worker: a worker module was started before load');
    const [modulePath, data] = args as [string, unknown];
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const setup = (require(modulePath) as { setupWorkerModule?: WorkerModuleSetup }).setupWorkerModule;
    if (typeof setup !== 'function') throw new Error(`worker: module ${modulePath} exports no setupWorkerModule function`);
    return await setup({ executor, data });
  }
  if (op === 'stats') return executor ? { ...executor.stats, forwardMs: { ...executor.stats.forwardMs } } : null;
  if (!executor) throw new Error(`worker: "${op}" called before load`);
  if (!(EXECUTOR_OPS as readonly string[]).includes(op)) throw new Error(`worker: unknown op "${op}"`);
  if (op === 'forward' && encodeDelayMs > 0 && (args[0] as ForwardRequest).logits === 'none') blockThread(encodeDelayMs);
  const fn = (executor as unknown as Record<string, (...a: unknown[]) => unknown>)[op];
  return fn.apply(executor, args);
}

function transferables(value: unknown, out: ArrayBuffer[] = [], depth = 0): ArrayBuffer[] {
  if (ArrayBuffer.isView(value)) {
    const buf = value.buffer as ArrayBuffer;
    if (!out.includes(buf) && buf.byteLength === value.byteLength) out.push(buf);
  } else if (value && typeof value === 'object' && depth < 3) {
    for (const v of Object.values(value)) transferables(v, out, depth + 1);
  }
  return out;
}

function serializeError(e: unknown): SerializedError {
  if (e instanceof StarqError) return { name: e.name, message: e.message, code: e.code, param: e.param, status: e.status, stack: e.stack };
  const err = e instanceof Error ? e : new Error(String(e));
  return { name: err.name, message: err.message, code: null, param: null, status: null, stack: err.stack };
}

parentPort!.on('message', async (msg: WorkerRequest) => {
  if (msg.op === EXIT_OP) process.exit(0);
  let response: WorkerResponse;
  let transfer: ArrayBuffer[] = [];
  try {
    const result = await handle(msg.op, msg.args);
    response = { id: msg.id, ok: true, result };
    transfer = transferables(result);
  } catch (e) {
    response = { id: msg.id, ok: false, error: serializeError(e) };
  }
  parentPort!.postMessage(response, transfer);
});
