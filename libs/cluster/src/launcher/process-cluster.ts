/**
 * A local starq cluster as child processes: N host actors and one query actor (`bin/starq-actor`),
 * optionally the HTTP gateway (`bin/starq-gateway`), against a Redis — the given one, the default
 * 127.0.0.1:6379, or, when none is reachable, a `redis-server` started on a free loopback port.
 * Used by `starq cluster up`, `starq bench speed --cluster` and the benchmark programs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createRedis, RedisUnavailableError } from '@starq/actors';
import { defaultModelDir } from '@starq/model/default-model';
import { writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { InvalidInputError, RedisKeys, StarqError } from '@starq/protocol';
import { ClusterRegistry } from '../registry';
import { spawnGateway } from './gateway-process';

const ACTOR_BIN = path.resolve(__dirname, '../../../../bin/starq-actor');

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
  /** Extra environment of the query actor (e.g. STARQ_BATCHING, STARQ_MAX_RUNNING). */
  queryEnv?: Record<string, string>;
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
    let redis = await createRedis(redisUrl, { urlSource: '--redis' }).catch((e) => {
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
      const registry = new ClusterRegistry(redis, { keys: new RedisKeys(o.prefix) });
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
          ...(app === 'query-actor' ? o.queryEnv : {}),
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
