/**
 * Configuration of the actor processes (host actor, query actor), read from the environment once
 * and validated as a whole: every bad variable is reported in one error.
 *
 * | variable                 | meaning                                        | default                   |
 * | ------------------------ | ---------------------------------------------- | ------------------------- |
 * | STARQ_REDIS_URL          | Redis URL                                      | redis://127.0.0.1:6379    |
 * | STARQ_PREFIX             | key prefix of the cluster                      | starq                     |
 * | STARQ_MODEL_DIR          | Hugging Face model directory (required)        |                           |
 * | STARQ_MODEL_ID           | model name clients use                         | basename of the directory |
 * | STARQ_ACTOR_ID           | actor id (unique in the cluster)               | <type>-<hostname>-<pid>   |
 * | STARQ_THREADS            | ORT threads of this actor's engine             | 1                         |
 * | STARQ_MAX_ROWS_PER_CALL  | rows per qkv/post/head ORT call of the engine  | 2048 (the engine default) |
 * |                          | (`ExecutorOptions.maxRowsPerCall`: fewer rows, |                           |
 * |                          | less activation memory kept by ORT's arenas)   |                           |
 * | STARQ_KV_LIMIT_BYTES     | host: KV memory limit (LRU eviction above it)  | 2147483648 (2 GiB)        |
 * | STARQ_MAX_RUNNING        | query actor: requests in the running set       | 16                        |
 * | STARQ_CONCURRENCY        | query actor: request jobs taken at once (the   | STARQ_MAX_RUNNING         |
 * |                          | ones beyond the running set wait in its queue) |                           |
 * | STARQ_QUERY_KV_BYTES     | query actor: KV budget of the running set's    | 1073741824 (1 GiB)        |
 * |                          | own caches (query + generated tokens)          |                           |
 * | STARQ_BATCHING           | query actor: 1 = one batched step for the      | 1                         |
 * |                          | running set, 0 = each request its own steps    |                           |
 * | STARQ_ATTEND_BATCHING    | 1 = phase-2 attention of a call's items in     | 1                         |
 * |                          | shared ORT calls (`ExecutorOptions.            |                           |
 * |                          | attendBatching`), 0 = each item on its own     |                           |
 * | STARQ_HEARTBEAT_MS       | registry heartbeat period                      | 1000                      |
 * | STARQ_TTL_MS             | registry record TTL (dead after this)          | 5000                      |
 * | STARQ_ATTEND_TIMEOUT_MS  | query actor: per-layer host call timeout       | 15000                     |
 * | STARQ_ACTOR_WAIT_MS      | a request waiting this long for an actor kind  | 60000                     |
 * |                          | with no live actor is failed (actor-wait.ts)   |                           |
 * | STARQ_LINK               | host: direct-link listen address, or `off`     | tcp://127.0.0.1:0         |
 * | STARQ_LINK_ADVERTISE     | host: link address put in the registry record  | the bound address         |
 * | STARQ_LINK_THREAD        | host: thread that owns the link's sockets:     | engine                    |
 * |                          | `engine` (answers attend calls there), `main`  |                           |
 * |                          | (every call via the main thread, comparison)   |                           |
 *
 * The direct link (libs/actors direct-link.ts) carries phase-2 calls from query actors straight to
 * the host; `tcp://127.0.0.1:0` (any free loopback port) serves callers on the same machine. For
 * callers on other machines listen on a routable interface (`tcp://0.0.0.0:7400`) and advertise
 * the address they reach it by (`tcp://10.0.0.5:7400`). With `off` (or an address a caller cannot
 * reach) calls go through Redis pub/sub.
 *
 * Also read here, documented where they are parsed: STARQ_HEALTH_PORT, STARQ_HEALTH_HOST,
 * STARQ_DRAIN_TIMEOUT_MS (lifecycle-config.ts) and STARQ_EXECUTION_PROVIDER, STARQ_CUDA_DEVICE_ID
 * (libs/model/src/runtime/execution-provider.ts).
 *
 * Test only (never set in a deployment):
 *
 * | variable                   | meaning                                                   | default |
 * | -------------------------- | --------------------------------------------------------- | ------- |
 * | STARQ_TEST_ENCODE_DELAY_MS | host: block the engine's worker thread this long before   | 0       |
 * |                            | every block encode (`EngineOptions.testEncodeDelayMs`)    |         |
 * | STARQ_TEST_STEP_DELAY_MS   | query actor: pause before every phase-2 step (paces a     | 0       |
 * |                            | generation so that a test can act during it)              |         |
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseExecutionProvider, type ExecutionProviderRequest } from '@starq/model/runtime/execution-provider';
import { InvalidInputError } from '@starq/protocol';
import { parseLinkAddress } from '@starq/actors';
import { parseLifecycleConfig, type LifecycleConfig } from './lifecycle-config';

export interface ActorConfig {
  redisUrl: string;
  prefix: string;
  modelDir: string;
  modelId: string;
  actorId: string;
  threads: number;
  /** `ExecutorOptions.maxRowsPerCall` of the actor's engine (null: the engine default). */
  maxRowsPerCall: number | null;
  kvLimitBytes: number;
  concurrency: number;
  /** Query actor: most requests advanced together (the running set). */
  maxRunning: number;
  /** Query actor: KV bytes the running set's own caches may reserve. */
  queryKvBytes: number;
  /** Query actor: batch the running set's steps (false: each request steps alone, for comparison). */
  batching: boolean;
  /** `ExecutorOptions.attendBatching` of the actor's engine (false: the per-request reference path, for comparison). */
  attendBatching: boolean;
  heartbeatMs: number;
  ttlMs: number;
  attendTimeoutMs: number;
  /** A request waiting this long for an actor kind with no live actor is failed (`query_actor_unavailable` / `host_unavailable`). */
  actorWaitMs: number;
  /** Direct-link listen address (null: pub/sub only). */
  link: string | null;
  /** Address advertised for the link (null: the bound address). */
  linkAdvertise: string | null;
  /** Host: the thread that serves the link — the engine's worker thread (attend calls answered there) or the main thread (every call through it, for comparison). */
  linkThread: 'engine' | 'main';
  /** Health server and drain settings. */
  lifecycle: LifecycleConfig;
  /** Execution providers to try, in order (resolved at start-up). */
  executionProvider: ExecutionProviderRequest;
  /** Test only: `EngineOptions.testEncodeDelayMs` of the host's engine. @defaultValue 0 */
  testEncodeDelayMs: number;
  /** Tests only: pause before every phase-2 step (ms); 0 in any deployment. */
  testStepDelayMs: number;
}

export function parseActorConfig(kind: 'host' | 'query', env: NodeJS.ProcessEnv = process.env): ActorConfig {
  const problems: string[] = [];
  const int = (name: string, def: number, min: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return def;
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < min) {
      problems.push(`${name} must be an integer ≥ ${min} (got ${JSON.stringify(raw)})`);
      return def;
    }
    return n;
  };
  const modelDir = env.STARQ_MODEL_DIR ?? '';
  if (!modelDir) problems.push('STARQ_MODEL_DIR is required (the Hugging Face model directory)');
  else if (!fs.existsSync(path.join(modelDir, 'config.json'))) problems.push(`STARQ_MODEL_DIR=${modelDir} has no config.json`);
  const redisUrl = env.STARQ_REDIS_URL || 'redis://127.0.0.1:6379';
  if (!/^rediss?:\/\//.test(redisUrl)) problems.push(`STARQ_REDIS_URL must start with redis:// or rediss:// (got ${JSON.stringify(redisUrl)})`);
  const prefix = env.STARQ_PREFIX || 'starq';
  if (!/^[A-Za-z0-9_.:-]+$/.test(prefix)) problems.push(`STARQ_PREFIX may only contain letters, digits and _ . : - (got ${JSON.stringify(prefix)})`);
  const cfg: ActorConfig = {
    redisUrl,
    prefix,
    modelDir,
    modelId: env.STARQ_MODEL_ID || (modelDir ? path.basename(path.resolve(modelDir)) : ''),
    actorId: env.STARQ_ACTOR_ID || `${kind}-${os.hostname()}-${process.pid}`,
    threads: int('STARQ_THREADS', 1, 1),
    maxRowsPerCall: env.STARQ_MAX_ROWS_PER_CALL ? int('STARQ_MAX_ROWS_PER_CALL', 0, 1) : null,
    kvLimitBytes: int('STARQ_KV_LIMIT_BYTES', 2 * 1024 ** 3, 1),
    concurrency: 0,
    maxRunning: int('STARQ_MAX_RUNNING', 16, 1),
    queryKvBytes: int('STARQ_QUERY_KV_BYTES', 1024 ** 3, 1),
    batching: true,
    attendBatching: true,
    heartbeatMs: int('STARQ_HEARTBEAT_MS', 1000, 10),
    ttlMs: int('STARQ_TTL_MS', 5000, 20),
    attendTimeoutMs: int('STARQ_ATTEND_TIMEOUT_MS', 15000, 10),
    actorWaitMs: int('STARQ_ACTOR_WAIT_MS', 60000, 100),
    link: env.STARQ_LINK === 'off' ? null : env.STARQ_LINK || 'tcp://127.0.0.1:0',
    linkAdvertise: env.STARQ_LINK_ADVERTISE || null,
    linkThread: 'engine',
    lifecycle: parseLifecycleConfig(env, problems),
    executionProvider: parseExecutionProvider(env, problems),
    testEncodeDelayMs: int('STARQ_TEST_ENCODE_DELAY_MS', 0, 0),
    testStepDelayMs: int('STARQ_TEST_STEP_DELAY_MS', 0, 0),
  };
  for (const [name, v] of [
    ['STARQ_LINK', cfg.link],
    ['STARQ_LINK_ADVERTISE', cfg.linkAdvertise],
  ] as const) {
    if (v === null) continue;
    try {
      parseLinkAddress(v);
    } catch (e) {
      problems.push(`${name}: ${(e as Error).message} (or STARQ_LINK=off for pub/sub only)`);
    }
  }
  if (cfg.link && !cfg.linkAdvertise && /^tcp:\/\/(0\.0\.0\.0|\[::\]):/.test(cfg.link)) {
    problems.push(`STARQ_LINK=${cfg.link} listens on every interface: set STARQ_LINK_ADVERTISE to the address callers reach this host by (e.g. tcp://10.0.0.5:7400)`);
  }
  const linkThread = env.STARQ_LINK_THREAD;
  if (linkThread !== undefined && linkThread !== '' && linkThread !== 'engine' && linkThread !== 'main') problems.push(`STARQ_LINK_THREAD must be engine or main (got ${JSON.stringify(linkThread)})`);
  cfg.linkThread = linkThread === 'main' ? 'main' : 'engine';
  cfg.concurrency = int('STARQ_CONCURRENCY', cfg.maxRunning, 1);
  const batching = env.STARQ_BATCHING;
  if (batching !== undefined && batching !== '' && batching !== '0' && batching !== '1') problems.push(`STARQ_BATCHING must be 1 or 0 (got ${JSON.stringify(batching)})`);
  cfg.batching = batching !== '0';
  const attendBatching = env.STARQ_ATTEND_BATCHING;
  if (attendBatching !== undefined && attendBatching !== '' && attendBatching !== '0' && attendBatching !== '1') problems.push(`STARQ_ATTEND_BATCHING must be 1 or 0 (got ${JSON.stringify(attendBatching)})`);
  cfg.attendBatching = attendBatching !== '0';
  if (cfg.ttlMs <= cfg.heartbeatMs) problems.push(`STARQ_TTL_MS (${cfg.ttlMs}) must exceed STARQ_HEARTBEAT_MS (${cfg.heartbeatMs})`);
  if (problems.length > 0) {
    throw new InvalidInputError('invalid_config', `invalid ${kind} actor configuration:\n  - ${problems.join('\n  - ')}`, 'env');
  }
  return cfg;
}
