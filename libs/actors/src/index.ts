/**
 * @starq/actors — a small Ray-style actor runtime on Redis (DESIGN §4).
 *
 * Pieces:
 * - `createRedis(url, { forBullmq })`: connections; fail fast with RedisUnavailableError.
 * - `ActorRegistry`: actors register (id, type, inbox address, capacity, status) and heartbeat a
 *   record with a TTL; `list()` / `get()` / `isAlive()` see live actors only.
 * - `ActorServer` (receiver) + `ActorClient` / `ActorHandle` (caller): RPC over Redis pub/sub with
 *   msgpack messages from @starq/protocol (typed arrays stay binary). ~0.4–0.8 ms per round trip (median) on
 *   loopback; use it for the phase-2 hot path.
 * - `createQueue` / `createWorker` / `createFlowProducer`: BullMQ for durable stateless work
 *   (phase-1 block jobs). ~1.2 ms per job; JSON payloads only.
 *
 * Semantics:
 * - Ordering: calls from one caller (one ActorClient, i.e. one publishing connection) reach an
 *   actor in the order made and are *started* in that order. Concurrent methods may finish out of
 *   order; `serial` methods (or a shared serial lane) start and finish in arrival order. No
 *   ordering holds across different callers.
 * - Actor calls are at-most-once: a call is published once, never retried by the runtime. On
 *   ActorTimeoutError the call may or may not have run; the caller decides whether to retry (and
 *   where). A call that reaches the actor after its deadline is not run.
 * - Queue jobs are at-least-once: failed jobs are retried (`DEFAULT_JOB_OPTIONS`: 3 attempts,
 *   exponential backoff) and jobs of a dead worker are re-queued by the stalled check, so a job
 *   can run more than once: processors must be idempotent.
 * - Failure detection: a call to an actor with no inbox subscriber fails at once (ActorDiedError);
 *   one that gets no reply in `timeoutMs` fails with ActorTimeoutError, or ActorDiedError if the
 *   actor's registry record expired meanwhile.
 * - What a restarted (crashed) actor loses: all in-memory state, in particular its KV blocks.
 *   Its registry record expires after `ttlMs` (a clean `deregister()` removes it at once); calls
 *   through handles to it fail with ActorDiedError; its calls in flight get no reply. Its KV
 *   handle records in Redis must be treated as stale (check `hostId` against the registry) and
 *   its blocks re-encoded elsewhere (block jobs are pure functions of the context: lineage).
 *   A new process must register under a new id, or wait `ttlMs` to reuse the old one.
 * - Clocks: call deadlines are epoch ms, so caller and actor clocks should agree to well under
 *   the timeouts used (NTP).
 */
export * from './errors';
export * from './redis';
export * from './registry';
export * from './actor-server';
export * from './actor-handle';
export * from './actor-client';
export * from './task-queue';
export * from './starq';
export * from './claim-check';
export * from './lifecycle';
