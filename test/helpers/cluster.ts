/**
 * Real starq clusters for end-to-end tests: `node bin/starq-actor host-actor|query-actor`
 * processes against a real Redis under a random key prefix.
 *
 * Every process is spawned `detached` (its own process group) and stopped with a signal to the
 * whole group (SIGTERM, then SIGKILL after a timeout), so nothing outlives the test file even when
 * a test fails; `stop()` also deletes every Redis key under the prefix. A process-exit hook
 * SIGKILLs whatever is still running if a test file is torn down without calling `stop()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import type { Redis } from 'ioredis';
import { createRedis } from '@starq/actors';
import { ClusterRegistry, StarqClient, type ClusterActorRecord } from '@starq/cluster';
import { RedisKeys } from '../../libs/protocol/src';

export const ROOT = path.resolve(__dirname, '../..');
export const REDIS_URL = process.env.STARQ_TEST_REDIS_URL || 'redis://127.0.0.1:6379';
const ACTOR_BIN = path.join(ROOT, 'bin/starq-actor');

/** Every group leader spawned by this module and not yet known to have exited. */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) killGroup(c, 'SIGKILL');
});

export function randomPrefix(tag = 'e2e'): string {
  return `starq-test-${tag}-${randomBytes(5).toString('hex')}`;
}

/** Sends `sig` to the process group of `c` (falls back to the process itself). */
export function killGroup(c: ChildProcess, sig: NodeJS.Signals): void {
  if (c.pid === undefined || c.exitCode !== null || c.signalCode !== null) return;
  try {
    process.kill(-c.pid, sig);
  } catch {
    try {
      c.kill(sig);
    } catch {
      /* already gone */
    }
  }
}

/** Resolves when `c` has exited (true) or after `ms` (false). */
export function waitExit(c: ChildProcess, ms: number): Promise<boolean> {
  if (c.exitCode !== null || c.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    c.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

/** SIGTERM (or `sig`) to the group, SIGKILL after `graceMs`; resolves once the leader exited. */
export async function stopProcess(c: ChildProcess, graceMs = 8000, sig: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  killGroup(c, sig);
  if (!(await waitExit(c, graceMs))) {
    killGroup(c, 'SIGKILL');
    await waitExit(c, 5000);
  }
  // Children of the leader (if any) share its group: make sure none survives.
  if (c.pid !== undefined) {
    try {
      process.kill(-c.pid, 'SIGKILL');
    } catch {
      /* group empty */
    }
  }
  live.delete(c);
}

/** Spawns a detached process with captured output (tail kept for error messages). */
export function spawnTracked(args: string[], env: NodeJS.ProcessEnv, opts: { cwd?: string } = {}): { proc: ChildProcess; out: () => string; stdout: () => string } {
  const proc = spawn(process.execPath, args, { cwd: opts.cwd ?? ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  let all = '';
  let stdout = '';
  const keep = (s: string) => {
    all += s;
    if (all.length > 20000) all = all.slice(-20000);
  };
  proc.stdout!.on('data', (b: Buffer) => {
    stdout += b.toString();
    keep(b.toString());
  });
  proc.stderr!.on('data', (b: Buffer) => keep(b.toString()));
  return { proc, out: () => all, stdout: () => stdout };
}

/** Deletes every key matching `${prefix}:*`; returns how many were deleted. */
export async function deletePrefix(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) n += await redis.del(...keys);
  } while (cursor !== '0');
  return n;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export interface ActorProcess {
  id: string;
  kind: 'host' | 'query';
  proc: ChildProcess;
  /** Captured stdout+stderr (tail). */
  output: () => string;
}

export interface TestClusterOptions {
  modelDir: string;
  hosts: number;
  queryActors?: number;
  prefix?: string;
  /** Extra STARQ_* variables for every actor. */
  env?: Record<string, string>;
  /** @defaultValue 300 */
  heartbeatMs?: number;
  /** @defaultValue 1500 */
  ttlMs?: number;
  /** @defaultValue 5000 */
  attendTimeoutMs?: number;
  /** Registration deadline. @defaultValue 120000 */
  startTimeoutMs?: number;
  /** @defaultValue REDIS_URL */
  redisUrl?: string;
}

let actorSeq = 0;

export class TestCluster {
  readonly keys: RedisKeys;
  readonly registry: ClusterRegistry;
  readonly actors: ActorProcess[] = [];
  private stopped = false;

  private constructor(
    readonly opts: Required<Omit<TestClusterOptions, 'env'>> & { env: Record<string, string> },
    readonly redis: Redis,
    readonly client: StarqClient,
  ) {
    this.keys = new RedisKeys(opts.prefix);
    this.registry = new ClusterRegistry(redis, { keys: this.keys });
  }

  get prefix(): string {
    return this.opts.prefix;
  }

  /** Model id the actors serve (basename of the model directory). */
  get model(): string {
    return path.basename(path.resolve(this.opts.modelDir));
  }

  /** Starts all actors in parallel and waits until every one is in the registry. */
  static async start(o: TestClusterOptions): Promise<TestCluster> {
    const opts = {
      queryActors: 1,
      prefix: randomPrefix(),
      heartbeatMs: 300,
      ttlMs: 1500,
      attendTimeoutMs: 5000,
      startTimeoutMs: 120000,
      redisUrl: REDIS_URL,
      ...o,
      env: o.env ?? {},
    };
    const redis = await createRedis(opts.redisUrl, { connectionName: 'starq-e2e' });
    const client = await StarqClient.connect(opts.redisUrl, { prefix: opts.prefix });
    const c = new TestCluster(opts, redis, client);
    try {
      const started = [...Array.from({ length: opts.hosts }, () => c.spawnActor('host')), ...Array.from({ length: opts.queryActors }, () => c.spawnActor('query'))];
      await c.waitRegistered(started);
    } catch (e) {
      await c.stop();
      throw e;
    }
    return c;
  }

  /** Starts `n` more host processes and waits for them. */
  async addHosts(n: number): Promise<ActorProcess[]> {
    const started = Array.from({ length: n }, () => this.spawnActor('host'));
    await this.waitRegistered(started);
    return started;
  }

  /** Starts `n` more query-actor processes and waits for them. */
  async addQueryActors(n: number): Promise<ActorProcess[]> {
    const started = Array.from({ length: n }, () => this.spawnActor('query'));
    await this.waitRegistered(started);
    return started;
  }

  /** Live (not exited) query-actor processes. */
  queryActors(): ActorProcess[] {
    return this.actors.filter((a) => a.kind === 'query' && a.proc.exitCode === null && a.proc.signalCode === null);
  }

  hosts(): ActorProcess[] {
    return this.actors.filter((a) => a.kind === 'host' && a.proc.exitCode === null && a.proc.signalCode === null);
  }

  actor(id: string): ActorProcess {
    const a = this.actors.find((x) => x.id === id);
    if (!a) throw new Error(`no actor ${id} in this test cluster`);
    return a;
  }

  /** SIGKILL one actor (no clean shutdown: its registry record expires after ttlMs). */
  async kill(id: string): Promise<void> {
    const a = this.actor(id);
    killGroup(a.proc, 'SIGKILL');
    await waitExit(a.proc, 5000);
  }

  /** Stops every actor (SIGTERM, then SIGKILL), closes the connections, deletes the prefix's keys. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.actors.map((a) => stopProcess(a.proc, 8000)));
    await this.client.close().catch(() => undefined);
    await deletePrefix(this.redis, this.prefix).catch(() => undefined);
    this.redis.disconnect();
  }

  /** Output of every actor, for failure messages. */
  logs(): string {
    return this.actors.map((a) => `--- ${a.id} (pid ${a.proc.pid}, exit ${a.proc.exitCode ?? a.proc.signalCode}) ---\n${a.output()}`).join('\n');
  }

  private spawnActor(kind: 'host' | 'query'): ActorProcess {
    const id = `${kind}-${process.pid}-${++actorSeq}`;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      STARQ_REDIS_URL: this.opts.redisUrl,
      STARQ_PREFIX: this.prefix,
      STARQ_MODEL_DIR: this.opts.modelDir,
      STARQ_ACTOR_ID: id,
      STARQ_HEARTBEAT_MS: String(this.opts.heartbeatMs),
      STARQ_TTL_MS: String(this.opts.ttlMs),
      STARQ_ATTEND_TIMEOUT_MS: String(this.opts.attendTimeoutMs),
      ...this.opts.env,
    };
    const { proc, out } = spawnTracked([ACTOR_BIN, kind === 'host' ? 'host-actor' : 'query-actor'], env);
    const a: ActorProcess = { id, kind, proc, output: out };
    this.actors.push(a);
    return a;
  }

  private async waitRegistered(started: ActorProcess[]): Promise<ClusterActorRecord[]> {
    const deadline = Date.now() + this.opts.startTimeoutMs;
    for (;;) {
      const recs = await this.registry.list();
      const ids = new Set(recs.map((r) => r.id));
      if (started.every((a) => ids.has(a.id))) return recs;
      const dead = started.find((a) => a.proc.exitCode !== null || a.proc.signalCode !== null);
      if (dead) throw new Error(`actor ${dead.id} exited during start-up (${dead.proc.exitCode ?? dead.proc.signalCode}):\n${dead.output()}`);
      if (Date.now() > deadline) throw new Error(`actors did not register within ${this.opts.startTimeoutMs} ms:\n${this.logs()}`);
      await sleep(100);
    }
  }
}
