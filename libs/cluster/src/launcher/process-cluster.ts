/**
 * A local starq cluster as child processes: N host actors and one query actor (`bin/starq-actor`),
 * optionally the HTTP gateway (`bin/starq-gateway`), against a Redis — the given one, the default
 * 127.0.0.1:6379, or, when none is reachable, a `redis-server` started on a free loopback port.
 * Used by `starq cluster up`, `starq bench speed --cluster` and the benchmark programs.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRedis, RedisUnavailableError } from '@starq/actors';
import { defaultModelDir } from '@starq/model/default-model';
import { writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { InvalidInputError, RedisKeys, StarqError } from '@starq/protocol';
import { ClusterRegistry } from '../registry';
import { spawnGateway } from './gateway-process';
import { Supervisor, type RestartPolicy, type SupervisedProcess } from './supervisor';
import { RedisServer } from './redis-server';

const ACTOR_BIN = path.resolve(__dirname, '../../../../bin/starq-actor');

export interface LocalProcessCluster {
  redisUrl: string;
  prefix: string;
  modelDir: string;
  hostIds: string[];
  queryIds: string[];
  /** URL of the HTTP gateway, when one was started. */
  gatewayUrl: string | null;
  /** Process ids of the actor processes as started (hosts first, then the query actor). */
  actorPids: number[];
  /** The supervisor of every process started (states, current processes). */
  supervisor: Supervisor;
  /** Stop every process started (actors first, then the private Redis), remove temp files. */
  stop(): Promise<void>;
}

export interface StartClusterOptions {
  hosts: number;
  /** ORT threads per actor process. */
  threads: number;
  /** Query-actor processes. @defaultValue 1 */
  queryActors?: number;
  /** ORT threads of the query actor. @defaultValue threads */
  queryThreads?: number;
  prefix: string;
  redisUrl?: string;
  modelDir?: string | null;
  kvLimit?: number;
  /** Extra environment of the query actor (e.g. STARQ_BATCHING, STARQ_MAX_RUNNING). */
  queryEnv?: Record<string, string>;
  /** Extra environment of every actor process (e.g. STARQ_MAX_ROWS_PER_CALL). @defaultValue none */
  actorEnv?: Record<string, string>;
  /** Also start the HTTP gateway (apps/gateway) on this port. */
  gateway?: { port: number; apiKeys?: string[] };
  /** Where actor output goes. @defaultValue process.stderr */
  log?: (line: string) => void;
  /**
   * What to do when a process exits unasked (see supervisor.ts). `starq cluster up` restarts
   * (`always`); programs that measure want a dead actor to stay dead.
   * @defaultValue `{ policy: 'never' }`
   */
  restart?: RestartPolicy;
}

/**
 * Start N host actors and one query actor as child processes (and a private redis-server when no
 * Redis is reachable and none was given); resolves when all have registered.
 */
export async function startProcessCluster(o: StartClusterOptions): Promise<LocalProcessCluster> {
  const log = o.log ?? ((l: string) => process.stderr.write(l));
  let tmpModel: string | null = null;
  let privateRedis: RedisServer | null = null;
  let supervisor: Supervisor | null = null;
  let supRedis: Awaited<ReturnType<typeof createRedis>> | null = null;
  const stop = async () => {
    await supervisor?.stop(10000);
    supRedis?.disconnect();
    await privateRedis?.stop();
    if (tmpModel) fs.rmSync(tmpModel, { recursive: true, force: true });
  };
  try {
    let modelDir = o.modelDir ?? defaultModelDir();
    if (!modelDir) {
      tmpModel = fs.mkdtempSync(path.join(os.tmpdir(), 'starq-cluster-model-'));
      writeRandomCheckpoint(tmpModel, { architecture: 'llama', hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 128, maxPositions: 2048, dtype: 'F32', tied: true, sharded: false, seed: 1 });
      modelDir = tmpModel;
      log(`cluster: ../shared/models/stories260K not found, serving a generated random model from ${tmpModel}\n`);
    }
    if (!fs.existsSync(path.join(modelDir, 'config.json'))) throw new InvalidInputError('model_not_found', `model directory ${modelDir} has no config.json`, 'model');
    let redisUrl = o.redisUrl ?? 'redis://127.0.0.1:6379';
    let redis = await createRedis(redisUrl, { urlSource: '--redis' }).catch((e) => {
      if (o.redisUrl || !(e instanceof RedisUnavailableError)) throw e;
      return null;
    });
    if (!redis) {
      privateRedis = await RedisServer.start().catch((e) => {
        throw e instanceof StarqError && e.code === 'redis_not_installed'
          ? new StarqError('redis_not_installed', `no Redis is reachable at 127.0.0.1:6379 and ${e.message}`, { param: 'redis', status: 400 })
          : e;
      });
      redisUrl = privateRedis.url;
      redis = await retry(() => createRedis(redisUrl), 50, 100);
      log(`cluster: no Redis at 127.0.0.1:6379, started redis-server on ${redisUrl}\n`);
    }
    const keys = new RedisKeys(o.prefix);
    const tag = `${os.hostname()}-${process.pid}`;
    supRedis = redis;
    const registry = new ClusterRegistry(redis, { keys });
    supervisor = new Supervisor({ id: tag, redis, keys, policy: o.restart ?? { policy: 'never' }, log });
    const sup = supervisor;
    const existing = (await registry.list()).length;
    if (existing > 0) log(`cluster: note: ${existing} actors already live under prefix ${o.prefix}\n`);
    const isUp = async (id: string) => (await registry.get(id)) !== null;
    const spawnActor = (app: 'host-actor' | 'query-actor', i: number): SupervisedProcess => {
      const base = `${app === 'host-actor' ? 'host' : 'query'}-${i}-${tag}`;
      const name = `${app}-${i}`;
      return sup.add({
        name,
        kind: app === 'host-actor' ? 'host' : 'query',
        isUp,
        start: (n) => {
          // A restarted actor takes a new id: the dead one's registry record may not have expired yet.
          const id = n === 0 ? base : `${base}-r${n}`;
          const env = {
            ...process.env,
            STARQ_REDIS_URL: redisUrl,
            STARQ_PREFIX: o.prefix,
            STARQ_MODEL_DIR: modelDir!,
            STARQ_THREADS: String(app === 'query-actor' ? (o.queryThreads ?? o.threads) : o.threads),
            STARQ_ACTOR_ID: id,
            STARQ_EXIT_WITH_PARENT: '1',
            ...(o.kvLimit ? { STARQ_KV_LIMIT_BYTES: String(o.kvLimit) } : {}),
            ...o.actorEnv,
            ...(app === 'query-actor' ? o.queryEnv : {}),
          };
          const c = spawn(process.execPath, [ACTOR_BIN, app], { env, stdio: ['ignore', 'pipe', 'pipe'] });
          c.stdout!.on('data', (b: Buffer) => log(prefixLines(name, b)));
          c.stderr!.on('data', (b: Buffer) => log(prefixLines(name, b)));
          return { proc: c, actorId: id };
        },
      });
    };
    const hosts = Array.from({ length: o.hosts }, (_, i) => spawnActor('host-actor', i));
    const queries = Array.from({ length: o.queryActors ?? 1 }, (_, i) => spawnActor('query-actor', i));
    const started = [...hosts, ...queries];
    const ids = started.map((p) => p.actorId);
    const actorPids = started.map((p) => p.pid!);
    const deadline = Date.now() + 180000;
    for (;;) {
      const live = new Set((await registry.list()).map((a) => a.id));
      if (ids.every((id) => live.has(id))) break;
      const dead = sup.states().find((p) => p.lastExit !== null);
      if (dead) throw new StarqError('actor_failed', `an actor process exited during start-up (${dead.lastExit!.signal ?? `exit ${dead.lastExit!.code}`}); see its output above`, { status: 500 });
      if (Date.now() > deadline) throw new StarqError('startup_timeout', `actors did not register within 180 s (registered: ${[...live].join(', ') || 'none'})`, { status: 500 });
      await sleep(200);
    }
    for (const p of started) sup.markRunning(p.name);
    let gatewayUrl: string | null = null;
    if (o.gateway) {
      const gw = o.gateway;
      let first: Promise<string> | null = null;
      sup.add({
        name: 'gateway-0',
        kind: 'gateway',
        start: (n) => {
          const g = spawnGateway({ redisUrl, prefix: o.prefix, modelDir, port: gw.port, apiKeys: gw.apiKeys, gatewayId: `gateway-0-${tag}${n === 0 ? '' : `-r${n}`}`, log });
          if (n === 0) first = g.url;
          else void g.url.then((u) => log(`cluster: gateway-0 listens again on ${u}\n`)).catch(() => undefined);
          void g.url.then(() => sup.markRunning('gateway-0')).catch(() => undefined);
          return { proc: g.proc, actorId: `gateway-0-${tag}` };
        },
      });
      gatewayUrl = await first!;
    }
    return { redisUrl, prefix: o.prefix, modelDir, hostIds: hosts.map((h) => h.actorId), queryIds: queries.map((q) => q.actorId), gatewayUrl, actorPids, supervisor: sup, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

function prefixLines(name: string, b: Buffer): string {
  return b
    .toString()
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => `[${name}] ${l}\n`)
    .join('');
}

async function retry<T>(fn: () => Promise<T>, times: number, delayMs: number): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (e) {
      if (i >= times) throw e;
      await sleep(delayMs);
    }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
