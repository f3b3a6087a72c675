/**
 * Serving: Star phase 2 for many requests at once (continuous batching) over any `Host[]`.
 *   query-backend.ts   the query actor's compute + own KV caches (QueryBackend, EngineQueryBackend)
 *   admission.ts       running-set limits (count, query KV budget) and wait reasons
 *   block-locator.ts   where blocks live / re-encode lost ones (BlockLocator), failure kinds
 *   serving-metrics.ts batch size, step latency, tokens/s
 *   host-lost-error.ts the error of a request whose lost host could not be recovered
 *   serving-loop.ts    the loop (ServingLoop)
 */
export * from './query-backend';
export * from './admission';
export * from './block-locator';
export * from './serving-metrics';
export * from './host-lost-error';
export * from './serving-loop';
