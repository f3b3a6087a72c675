/**
 * Worker modules: code a process runs inside an engine's worker thread, next to its executor
 * (`ModelEngine.startWorkerModule`). A module exports `setupWorkerModule(ctx)`; it is loaded once,
 * in the worker, and may keep serving from there (e.g. answer requests that arrive on sockets it
 * opens) without a round trip through the main thread. It shares the thread with the engine's own
 * calls: both run between each other's awaits, as the engine's calls do among themselves.
 */
import type { ModelExecutor } from './executor';

/** What `setupWorkerModule` gets: the engine's executor and the data the module was started with (MessagePorts in it were transferred). */
export interface WorkerModuleContext<D = unknown> {
  executor: ModelExecutor;
  data: D;
}

/** The export a worker module must have; its result (structured-cloneable) is what `startWorkerModule` resolves with. */
export type WorkerModuleSetup<D = unknown, R = unknown> = (ctx: WorkerModuleContext<D>) => R | Promise<R>;
