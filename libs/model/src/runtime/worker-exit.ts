/**
 * The message op that ends an engine worker: the worker exits from its own event loop, between
 * two tasks, so never while an ORT call runs on its thread (see `ModelEngine.close`).
 */
export const EXIT_OP = '__exit';

/** The message op that loads a worker module into the engine's worker (`ModelEngine.startWorkerModule`). */
export const START_MODULE_OP = '__startModule';
