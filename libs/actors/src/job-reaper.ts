/**
 * Requeues the queue jobs of dead actors within seconds, using the registry's liveness instead of
 * BullMQ's lock expiry (`lockDuration`, 30 s).
 *
 * Workers are named after their actor (`createWorker({ name: actorId })`): BullMQ then records
 * the name as the job's `processedBy` in the same script that takes the job's lock. Every
 * {@link JobReaperOptions.intervalMs} the reaper looks at each queue's active jobs; a job whose
 * `processedBy` actor is no longer in the registry (its heartbeat record expired: the process died
 * or its event loop stalled longer than the registry TTL) gets its lock removed — in one script
 * that checks `processedBy` again, so a job another worker took meanwhile is never touched — and
 * is marked for the queue's next stalled check, which moves it back to `wait` (or fails it once it
 * stalled more than the worker's `maxStalledCount`). Any worker of that queue runs the check every
 * `stalledInterval`.
 *
 * This relies on BullMQ's key layout: the job hash `<bullPrefix>:<queue>:<jobId>` (field `pb`),
 * its lock `…:<jobId>:lock`, `<bullPrefix>:<queue>:active` (list), `…:stalled` (jobs the next
 * check examines) and `…:stalled-check` (the throttle of checks), as in BullMQ 5.
 *
 * Several actors may run reapers on one cluster: every step is idempotent.
 */
import type { Redis } from 'ioredis';
import type { RedisKeys } from '@starq/protocol';
import { PeriodicTask } from './periodic-task';

/** Where the reaper learns which actors are alive (an ActorRegistry). */
export interface LivenessSource {
  /** Live actors. */
  list(): Promise<{ id: string }[]>;
}

export interface JobReaperOptions {
  redis: Redis;
  keys: RedisKeys;
  registry: LivenessSource;
  /** Queues to watch (bare names). */
  queues: string[];
  /** Sweep period. @defaultValue 1000 */
  intervalMs?: number;
  /** Called for each job whose lock was removed (its holder died). */
  onReaped?: (queue: string, jobId: string, holder: string) => void | Promise<void>;
  /** @defaultValue console.warn */
  log?: (msg: string) => void;
}

// KEYS: job hash, lock, stalled set, stalled-check; ARGV: the dead actor, job id.
const REAP = `
if redis.call('HGET', KEYS[1], 'pb') ~= ARGV[1] then return 0 end
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('DEL', KEYS[4])
return 1`;

export class JobReaper {
  private readonly periodic: PeriodicTask;

  constructor(private readonly o: JobReaperOptions) {
    this.periodic = new PeriodicTask(() => this.sweep(), o.intervalMs ?? 1000, (e) => (o.log ?? console.warn)(`[starq] job reaper: ${(e as Error).message}`));
  }

  start(): void {
    this.periodic.start();
  }

  async stop(): Promise<void> {
    await this.periodic.stop();
  }

  /** One pass over every queue; returns the jobs whose locks were removed. */
  async sweep(): Promise<{ queue: string; jobId: string; holder: string }[]> {
    const out: { queue: string; jobId: string; holder: string }[] = [];
    const bull = this.o.keys.bullPrefix;
    let alive: Set<string> | null = null;
    for (const queue of this.o.queues) {
      const active = await this.o.redis.lrange(`${bull}:${queue}:active`, 0, -1);
      if (active.length === 0) continue;
      const p = this.o.redis.pipeline();
      for (const id of active) p.hget(`${bull}:${queue}:${id}`, 'pb');
      const holders = ((await p.exec()) ?? []).map(([err, v]) => (err ? null : (v as string | null)));
      for (const [i, holder] of holders.entries()) {
        if (!holder) continue;
        alive ??= new Set((await this.o.registry.list()).map((a) => a.id));
        if (alive.has(holder)) continue;
        const jobId = active[i];
        const n = await this.o.redis.eval(REAP, 4, `${bull}:${queue}:${jobId}`, `${bull}:${queue}:${jobId}:lock`, `${bull}:${queue}:stalled`, `${bull}:${queue}:stalled-check`, holder, jobId);
        if (Number(n) === 1) {
          out.push({ queue, jobId, holder });
          await this.o.onReaped?.(queue, jobId, holder);
        }
      }
    }
    return out;
  }
}
