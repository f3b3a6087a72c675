/**
 * Supervision of a local cluster's child processes, like a process supervisor's restart policies:
 * a process that exits unasked is started again after a backoff (doubling from `backoffMs` up to
 * `maxBackoffMs`), unless the policy is `never`, or `on-failure` and it exited with code 0. A
 * process that needed more than `maxRestarts` restarts within `windowMs` is given up on (state
 * `dead`) and stays down.
 *
 * The supervisor publishes its processes' states in Redis (`<prefix>:supervisor:<id>`, JSON, with
 * a TTL it refreshes), so `starq cluster status` and the gateway's /admin can show actors that are
 * restarting or dead — which the registry alone cannot (a dead actor's record lingers for its TTL,
 * then vanishes).
 */
import type { ChildProcess } from 'node:child_process';
import os from 'node:os';
import type { Redis } from 'ioredis';
import { InvalidInputError, type RedisKeys } from '@starq/protocol';
import { waitExit } from './child-process';

export type RestartPolicyName = 'always' | 'on-failure' | 'never';

export interface RestartPolicy {
  /** @defaultValue 'always' */
  policy?: RestartPolicyName;
  /** First delay before a restart (ms); doubles after each restart in the window. @defaultValue 500 */
  backoffMs?: number;
  /** Longest delay before a restart (ms). @defaultValue 10000 */
  maxBackoffMs?: number;
  /** Restarts allowed within `windowMs`; one more and the process is given up on. @defaultValue 5 */
  maxRestarts?: number;
  /** @defaultValue 60000 */
  windowMs?: number;
}

export type SupervisedState = 'starting' | 'running' | 'restarting' | 'dead' | 'stopped';

/** What the supervisor knows of one process (published as JSON). */
export interface SupervisedProcess {
  /** Stable name, e.g. `host-actor-0`. */
  name: string;
  kind: 'host' | 'query' | 'gateway';
  /** Actor id of the current (or last) incarnation. */
  actorId: string;
  /** Actor ids of earlier incarnations (the last few), whose registry records may linger for their TTL. */
  formerIds: string[];
  pid: number | null;
  state: SupervisedState;
  /** Restarts so far (all time). */
  restarts: number;
  lastExit: { code: number | null; signal: string | null; at: number } | null;
  /** Epoch ms of the next start, while `restarting`. */
  nextStartAt: number | null;
}

/** A supervisor's published record. */
export interface SupervisorRecord {
  id: string;
  pid: number;
  hostname: string;
  updatedAt: number;
  policy: Required<RestartPolicy>;
  processes: SupervisedProcess[];
}

export interface SuperviseSpec {
  name: string;
  kind: SupervisedProcess['kind'];
  /** Starts one incarnation (`n` = restarts so far); returns the process and its actor id. */
  start(n: number): { proc: ChildProcess; actorId: string };
  /** True once the incarnation serves (registered, listening): `starting` becomes `running`. */
  isUp?(actorId: string): Promise<boolean>;
}

const PUBLISH_MS = 1000;
const RECORD_TTL_MS = 5000;

/** Checks a policy and fills in its defaults. @throws InvalidInputError for impossible values. */
export function resolveRestartPolicy(p: RestartPolicy = {}): Required<RestartPolicy> {
  const r = { policy: p.policy ?? 'always', backoffMs: p.backoffMs ?? 500, maxBackoffMs: p.maxBackoffMs ?? 10000, maxRestarts: p.maxRestarts ?? 5, windowMs: p.windowMs ?? 60000 };
  if (!['always', 'on-failure', 'never'].includes(r.policy)) throw new InvalidInputError('invalid_restart_policy', `restart policy must be always, on-failure or never (got ${JSON.stringify(r.policy)})`, 'restart');
  for (const k of ['backoffMs', 'maxBackoffMs', 'windowMs'] as const) {
    if (!Number.isFinite(r[k]) || r[k] < 0) throw new InvalidInputError('invalid_restart_policy', `${k} must be a number ≥ 0 (got ${r[k]})`, k);
  }
  if (!Number.isInteger(r.maxRestarts) || r.maxRestarts < 0) throw new InvalidInputError('invalid_restart_policy', `maxRestarts must be an integer ≥ 0 (got ${r.maxRestarts})`, 'max-restarts');
  return r;
}

interface Entry {
  spec: SuperviseSpec;
  info: SupervisedProcess;
  proc: ChildProcess | null;
  /** Start times of the restarts within the window. */
  recent: number[];
  timer: NodeJS.Timeout | null;
}

export class Supervisor {
  readonly policy: Required<RestartPolicy>;
  private readonly entries: Entry[] = [];
  private stopping = false;
  private publisher: NodeJS.Timeout | null = null;

  constructor(
    private readonly o: {
      id: string;
      redis: Redis;
      keys: RedisKeys;
      policy?: RestartPolicy;
      /** One line per event (exits, restarts, giving up). */
      log: (line: string) => void;
    },
  ) {
    this.policy = resolveRestartPolicy(o.policy);
  }

  /** Redis key of a supervisor's record. */
  static key(keys: RedisKeys, id: string): string {
    return `${keys.prefix}:supervisor:${id}`;
  }

  /** Every supervisor record of a cluster (live supervisors only). */
  static async list(redis: Redis, keys: RedisKeys): Promise<SupervisorRecord[]> {
    const out: SupervisorRecord[] = [];
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${keys.prefix}:supervisor:*`, 'COUNT', 100);
      cursor = next;
      if (found.length === 0) continue;
      for (const raw of await redis.mget(found)) {
        if (!raw) continue;
        try {
          out.push(JSON.parse(raw) as SupervisorRecord);
        } catch {
          /* not ours */
        }
      }
    } while (cursor !== '0');
    return out;
  }

  /** Starts a supervised process. */
  add(spec: SuperviseSpec): SupervisedProcess {
    const e: Entry = { spec, info: { name: spec.name, kind: spec.kind, actorId: '', formerIds: [], pid: null, state: 'starting', restarts: 0, lastExit: null, nextStartAt: null }, proc: null, recent: [], timer: null };
    this.entries.push(e);
    this.launch(e);
    if (!this.publisher) {
      this.publisher = setInterval(() => void this.publish(), PUBLISH_MS);
      this.publisher.unref();
    }
    return e.info;
  }

  /** The current process of `name` (null while it is down). */
  process(name: string): ChildProcess | null {
    return this.entries.find((e) => e.spec.name === name)?.proc ?? null;
  }

  /** A snapshot of every supervised process. */
  states(): SupervisedProcess[] {
    return this.entries.map((e) => ({ ...e.info }));
  }

  /** Marks a process as started (it registered / listens). */
  markRunning(name: string): void {
    const e = this.entries.find((x) => x.spec.name === name);
    if (e && e.info.state === 'starting') e.info.state = 'running';
    void this.publish();
  }

  /** Stops supervising and ends every process (SIGTERM, SIGKILL after `graceMs`). */
  async stop(graceMs = 10000): Promise<void> {
    this.stopping = true;
    if (this.publisher) clearInterval(this.publisher);
    for (const e of this.entries) if (e.timer) clearTimeout(e.timer);
    await Promise.all(
      this.entries.map(async (e) => {
        const p = e.proc;
        e.info.state = 'stopped';
        if (!p || p.exitCode !== null || p.signalCode !== null) return;
        p.kill('SIGTERM');
        await waitExit(p, graceMs);
      }),
    );
    await this.o.redis.del(Supervisor.key(this.o.keys, this.o.id)).catch(() => undefined);
  }

  private launch(e: Entry): void {
    const { proc, actorId } = e.spec.start(e.info.restarts);
    if (e.info.actorId && e.info.actorId !== actorId) e.info.formerIds = [...e.info.formerIds, e.info.actorId].slice(-5);
    e.proc = proc;
    e.info.actorId = actorId;
    e.info.pid = proc.pid ?? null;
    e.info.nextStartAt = null;
    if (e.info.restarts > 0) e.info.state = 'starting';
    proc.once('exit', (code, signal) => this.exited(e, proc, code, signal));
    proc.once('error', (err) => this.o.log(`cluster: ${e.spec.name} could not start: ${err.message}\n`));
    void this.publish();
  }

  private exited(e: Entry, proc: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (e.proc !== proc) return;
    e.proc = null;
    e.info.pid = null;
    const now = Date.now();
    e.info.lastExit = { code, signal, at: now };
    if (this.stopping) {
      e.info.state = 'stopped';
      return;
    }
    const lost = e.spec.kind === 'host' ? '; its KV blocks are lost (re-encoded on demand)' : '';
    const how = signal ?? `exit ${code}`;
    const p = this.policy;
    if (p.policy === 'never' || (p.policy === 'on-failure' && code === 0)) {
      e.info.state = 'dead';
      this.o.log(`cluster: ${e.spec.name} (${e.info.actorId}) exited (${how})${lost}; not restarted (restart policy ${p.policy})\n`);
      void this.publish();
      return;
    }
    e.recent = e.recent.filter((t) => now - t < p.windowMs);
    if (e.recent.length >= p.maxRestarts) {
      e.info.state = 'dead';
      this.o.log(`cluster: ${e.spec.name} (${e.info.actorId}) exited (${how})${lost}; giving up: ${e.recent.length} restarts within ${p.windowMs / 1000} s (--max-restarts ${p.maxRestarts})\n`);
      void this.publish();
      return;
    }
    const delay = Math.min(p.maxBackoffMs, p.backoffMs * 2 ** e.recent.length);
    e.recent.push(now + delay);
    e.info.state = 'restarting';
    e.info.nextStartAt = now + delay;
    this.o.log(`cluster: ${e.spec.name} (${e.info.actorId}) exited (${how})${lost}; restarting in ${delay} ms (restart ${e.recent.length} of ${p.maxRestarts} within ${p.windowMs / 1000} s)\n`);
    void this.publish();
    e.timer = setTimeout(() => {
      e.timer = null;
      if (this.stopping) return;
      e.info.restarts++;
      this.launch(e);
    }, delay);
  }

  private async publish(): Promise<void> {
    if (this.stopping) return;
    for (const e of this.entries) {
      if (e.info.state === 'starting' && e.spec.isUp && (await e.spec.isUp(e.info.actorId).catch(() => false))) e.info.state = 'running';
    }
    const rec: SupervisorRecord = { id: this.o.id, pid: process.pid, hostname: os.hostname(), updatedAt: Date.now(), policy: this.policy, processes: this.states() };
    await this.o.redis.set(Supervisor.key(this.o.keys, this.o.id), JSON.stringify(rec), 'PX', RECORD_TTL_MS).catch(() => undefined);
  }
}
