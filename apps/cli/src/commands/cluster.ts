/**
 * `starq cluster up` — a local cluster: N host-actor processes and one query actor against a
 * Redis (the given one, the default 127.0.0.1:6379, or — when none is reachable — a
 * `redis-server` it starts on a free loopback port). Prints one `ready {...}` line on stdout when
 * every actor has registered, stays in the foreground, and on SIGINT/SIGTERM stops every process it
 * started (hosts release their KV handles).
 *
 * `starq cluster status` — the live actors of a cluster.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { ActorRegistry, createRedis, RedisUnavailableError } from '@starq/actors';
import { InvalidInputError, RedisKeys, StarqError } from '@starq/protocol';
import { writeRandomCheckpoint } from '@starq/model/testing/random-checkpoint';
import { intFlag } from '../options';
import { defaultModelDir } from '../default-model';
import { spawnGateway } from '../../../gateway/src/launcher';

const ACTOR_BIN = path.resolve(__dirname, '../../../../bin/starq-actor');

export function registerCluster(program: Command): void {
  const cluster = program.command('cluster').description('run or inspect a starq cluster');
  cluster
    .command('up')
    .description('start N host actors and a query actor (and Redis if none is reachable)')
    .option('--hosts <n>', 'host actor processes', '2')
    .option('--redis <url>', 'Redis URL (default: 127.0.0.1:6379, else a private redis-server)')
    .option('--model <dir>', 'model directory (default: ../shared/models/stories260K, else a generated tiny model)')
    .option('--threads <n>', 'ORT threads per actor', '1')
    .option('--prefix <p>', 'Redis key prefix of this cluster', process.env.STARQ_PREFIX || 'starq')
    .option('--kv-limit <bytes>', 'KV memory limit per host in bytes')
    .option('--port <p>', 'HTTP gateway port (0 = any free port)', '8080')
    .option('--api-key <key>', 'gateway API key (repeatable; default: STARQ_API_KEYS)', (v: string, acc: string[]) => [...acc, ...v.split(',')], [] as string[])
    .option('--no-gateway', 'do not start the HTTP gateway')
    .action(async (f: ClusterUpFlags) => {
      await clusterUp(f);
    });
  cluster
    .command('status')
    .description('list the live actors of a cluster')
    .option('--redis <url>', 'Redis URL', 'redis://127.0.0.1:6379')
    .option('--prefix <p>', 'Redis key prefix of the cluster', process.env.STARQ_PREFIX || 'starq')
    .option('--json', 'print one JSON object')
    .action(async (f: { redis: string; prefix: string; json?: boolean }) => {
      const redis = await createRedis(f.redis);
      try {
        const registry = new ActorRegistry(redis, { keys: new RedisKeys(f.prefix) });
        const now = Date.now();
        const actors = (await registry.list()).map((a) => ({
          id: a.id,
          type: a.type,
          alive: true,
          model: a.capacity.model,
          blocks: a.status.blocks,
          kvBytes: a.status.kvBytes,
          busy: a.status.busy,
          pid: a.pid,
          hostname: a.hostname,
          lastHeartbeatMsAgo: now - a.heartbeatAt,
        }));
        if (f.json) {
          process.stdout.write(JSON.stringify({ redis: f.redis, prefix: f.prefix, actors }) + '\n');
          return;
        }
        if (actors.length === 0) process.stdout.write(`no live actors under prefix ${f.prefix} at ${f.redis}\n`);
        for (const a of actors) {
          process.stdout.write(`${a.id.padEnd(28)} ${a.type.padEnd(6)} alive  model ${a.model}  blocks ${a.blocks}  kv ${a.kvBytes} B  ${a.busy ? 'busy' : 'idle'}  heartbeat ${a.lastHeartbeatMsAgo} ms ago  (${a.hostname}:${a.pid})\n`);
        }
      } finally {
        redis.disconnect();
      }
    });
}

export interface LocalProcessCluster {
  redisUrl: string;
  prefix: string;
  modelDir: string;
  hostIds: string[];
  queryIds: string[];
  /** URL of the HTTP gateway, when one was started. */
  gatewayUrl: string | null;
  /** Process ids of the actor processes (hosts first, then the query actor). */
  actorPids: number[];
  /** Stop every process started (actors first, then the private Redis), remove temp files. */
  stop(): Promise<void>;
}

export interface StartClusterOptions {
  hosts: number;
  /** ORT threads per actor process. */
  threads: number;
  /** ORT threads of the query actor. @defaultValue threads */
  queryThreads?: number;
  prefix: string;
  redisUrl?: string;
  modelDir?: string | null;
  kvLimit?: number;
  /** Also start the HTTP gateway (apps/gateway) on this port. */
  gateway?: { port: number; apiKeys?: string[] };
  /** Where actor output goes. @defaultValue process.stderr */
  log?: (line: string) => void;
}

/**
 * Start N host actors and one query actor as child processes (and a private redis-server when no
 * Redis is reachable and none was given); resolves when all have registered.
 */
export async function startProcessCluster(o: StartClusterOptions): Promise<LocalProcessCluster> {
  const log = o.log ?? ((l: string) => process.stderr.write(l));
  const children: ChildProcess[] = [];
  let tmpModel: string | null = null;
  let redisProc: ChildProcess | null = null;
  let stopping = false;
  const stop = async () => {
    stopping = true;
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await Promise.all(children.map((c) => waitExit(c, 10000)));
    if (redisProc && redisProc.exitCode === null) {
      redisProc.kill('SIGTERM');
      await waitExit(redisProc, 5000);
    }
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
    let redis = await createRedis(redisUrl).catch((e) => {
      if (o.redisUrl || !(e instanceof RedisUnavailableError)) throw e;
      return null;
    });
    if (!redis) {
      const port = await freePort();
      redisProc = await startRedis(port);
      redisUrl = `redis://127.0.0.1:${port}`;
      redis = await retry(() => createRedis(redisUrl), 50, 100);
      log(`cluster: no Redis at 127.0.0.1:6379, started redis-server on ${redisUrl}\n`);
    }
    try {
      const registry = new ActorRegistry(redis, { keys: new RedisKeys(o.prefix) });
      const existing = (await registry.list()).length;
      if (existing > 0) log(`cluster: note: ${existing} actors already live under prefix ${o.prefix}\n`);
      const tag = `${os.hostname()}-${process.pid}`;
      const spawnActor = (app: 'host-actor' | 'query-actor', i: number) => {
        const id = `${app === 'host-actor' ? 'host' : 'query'}-${i}-${tag}`;
        const env = {
          ...process.env,
          STARQ_REDIS_URL: redisUrl,
          STARQ_PREFIX: o.prefix,
          STARQ_MODEL_DIR: modelDir!,
          STARQ_THREADS: String(app === 'query-actor' ? (o.queryThreads ?? o.threads) : o.threads),
          STARQ_ACTOR_ID: id,
          ...(o.kvLimit ? { STARQ_KV_LIMIT_BYTES: String(o.kvLimit) } : {}),
        };
        const c = spawn(process.execPath, [ACTOR_BIN, app], { env, stdio: ['ignore', 'pipe', 'pipe'] });
        const name = `${app}-${i}`;
        c.stdout!.on('data', (b: Buffer) => log(prefixLines(name, b)));
        c.stderr!.on('data', (b: Buffer) => log(prefixLines(name, b)));
        c.on('exit', (code, sig) => {
          if (!stopping) log(`cluster: ${name} (pid ${c.pid}) exited (${sig ?? code}); its KV blocks are lost and will be re-encoded on demand\n`);
        });
        children.push(c);
        return id;
      };
      const hostIds = Array.from({ length: o.hosts }, (_, i) => spawnActor('host-actor', i));
      const queryIds = [spawnActor('query-actor', 0)];
      const ids = [...hostIds, ...queryIds];
      const deadline = Date.now() + 180000;
      for (;;) {
        const live = new Set((await registry.list()).map((a) => a.id));
        if (ids.every((id) => live.has(id))) break;
        const dead = children.find((c) => c.exitCode !== null);
        if (dead) throw new StarqError('actor_failed', `an actor process exited during start-up (exit ${dead.exitCode}); see its output above`, { status: 500 });
        if (Date.now() > deadline) throw new StarqError('startup_timeout', `actors did not register within 180 s (registered: ${[...live].join(', ') || 'none'})`, { status: 500 });
        await sleep(200);
      }
      let gatewayUrl: string | null = null;
      if (o.gateway) {
        const g = spawnGateway({ redisUrl, prefix: o.prefix, modelDir, port: o.gateway.port, apiKeys: o.gateway.apiKeys, gatewayId: `gateway-0-${tag}`, log });
        children.push(g.proc);
        gatewayUrl = await g.url;
      }
      const actorPids = children.slice(0, ids.length).map((c) => c.pid!);
      return { redisUrl, prefix: o.prefix, modelDir, hostIds, queryIds, gatewayUrl, actorPids, stop };
    } finally {
      redis.disconnect();
    }
  } catch (e) {
    await stop();
    throw e;
  }
}

interface ClusterUpFlags {
  hosts: string;
  redis?: string;
  model?: string;
  threads: string;
  prefix: string;
  kvLimit?: string;
  port: string;
  apiKey: string[];
  gateway: boolean;
}

async function clusterUp(f: ClusterUpFlags): Promise<void> {
  const cluster = await startProcessCluster({
    hosts: intFlag(f.hosts, 'hosts', 1)!,
    threads: intFlag(f.threads, 'threads', 1)!,
    kvLimit: intFlag(f.kvLimit, 'kv-limit', 1),
    prefix: f.prefix,
    redisUrl: f.redis,
    modelDir: f.model ?? null,
    gateway: f.gateway ? { port: intFlag(f.port, 'port', 0)!, apiKeys: f.apiKey.map((k) => k.trim()).filter((k) => k.length > 0) } : undefined,
  });
  try {
    process.stdout.write(`ready ${JSON.stringify({ redis: cluster.redisUrl, prefix: cluster.prefix, model: cluster.modelDir, hosts: cluster.hostIds, queryActors: cluster.queryIds, ...(cluster.gatewayUrl ? { gateway: cluster.gatewayUrl } : {}) })}\n`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', () => resolve());
      process.once('SIGTERM', () => resolve());
    });
    process.stderr.write('cluster: stopping\n');
  } finally {
    await cluster.stop();
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

/** A private redis-server on a loopback port (fails clearly when the binary is missing). */
function startRedis(port: number): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
    p.once('error', (e: NodeJS.ErrnoException) =>
      reject(
        e.code === 'ENOENT'
          ? new StarqError('redis_not_installed', 'no Redis is reachable at 127.0.0.1:6379 and redis-server is not installed: install it (Debian: apt-get install -y redis-server) or pass --redis URL', { param: 'redis', status: 400 })
          : e,
      ),
    );
    p.once('spawn', () => resolve(p));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
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

function waitExit(c: ChildProcess, ms: number): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      c.kill('SIGKILL');
      resolve();
    }, ms);
    c.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
