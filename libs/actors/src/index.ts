/**
 * @starq/actors — a small Ray-style actor runtime on Redis. It knows nothing about the application
 * that uses it: actor kinds, what an actor declares at registration (capacity) and what it reports
 * while running (status) are the caller's type parameters of {@link ActorRegistry}; methods and
 * their payloads are the caller's names and msgpack-encodable values.
 *
 * Pieces:
 * - `createRedis(url, { forBullmq })`: connections; fail fast with RedisUnavailableError.
 * - `ActorRegistry<Kind, Capacity, Status>`: actors register (id, kind, inbox address, capacity,
 *   status, optional direct-link address) and heartbeat a record with a TTL; `list()` / `get()` /
 *   `isAlive()` see live actors only.
 * - `ActorServer` (receiver) + `ActorClient` / `ActorHandle` (caller): RPC with msgpack messages
 *   (typed arrays stay binary), over a direct link (direct-link.ts: a TCP or Unix-socket
 *   connection per caller and actor, advertised in the actor's registry record) or, when the
 *   actor advertises none or it cannot be reached, over Redis pub/sub (messages over 1 MiB travel
 *   as a claim check); `bench/rpc.ts` measures both round trips (docs/BENCHMARKS.md). Calls can
 *   carry a trace of both sides (`onTrace`). `WorkerLinkServer` serves an actor's direct links
 *   from a worker thread (the methods registered there run in that thread; everything else is
 *   relayed to the main thread's `ActorServer`, `relayLinks`).
 *   One-way messages: `send(topic, body)` / `onMessage(topic, fn)`.
 * - `createQueue` / `createWorker` / `createFlowProducer`: BullMQ for durable stateless work.
 *   ~1.2 ms per job; JSON payloads only. A failed job's reason is an error record (`failJob`,
 *   read back with `jobFailure`).
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
 * - Failure detection: a call to an actor with no inbox subscriber fails at once (ActorDiedError),
 *   and so does a call in flight on a direct link that closes (the actor process died);
 *   one that gets no reply in `timeoutMs` fails with ActorTimeoutError, or ActorDiedError if the
 *   actor's registry record expired meanwhile.
 * - What a restarted (crashed) actor loses: all in-memory state. Its registry record expires after
 *   `ttlMs` (a clean `deregister()` removes it at once); calls through handles to it fail with
 *   ActorDiedError; its calls in flight get no reply. Anything it recorded elsewhere in Redis that
 *   names its in-memory state must be treated as stale (check the actor id against the registry),
 *   and that state rebuilt by the application (e.g. recomputed from its inputs: lineage).
 *   A new process must register under a new id, or wait `ttlMs` to reuse the old one.
 * - Clocks: call deadlines are epoch ms, so caller and actor clocks should agree to well under
 *   the timeouts used (NTP).
 */
export * from './errors';
export * from './redis';
export * from './registry';
export * from './call-runner';
export * from './actor-server';
export * from './actor-handle';
export * from './actor-client';
export * from './task-queue';
export * from './job-reaper';
export * from './periodic-task';
export * from './claim-check';
export * from './direct-link';
export * from './link-address';
export * from './link-frames';
export * from './link-listener';
export * from './link-relay';
export * from './worker-link-server';
