/**
 * The readiness of an actor process (served at /ready by its HealthServer): it is registered and
 * its record is live in Redis, Redis answers, its model is loaded and warmed, and it is not
 * draining. Liveness (/health) only says the process runs.
 */
import type { Redis } from 'ioredis';
import type { ReadinessCheck } from './health-server';
import type { ClusterRegistry } from './registry';

export interface ActorReadinessSource {
  redis: () => Redis | undefined;
  registry: () => ClusterRegistry | undefined;
  /** True once the model is loaded and one warm-up call ran. */
  warmed: () => boolean;
  draining: () => boolean;
  /** Longest wait for Redis. @defaultValue 1000 */
  timeoutMs?: number;
}

export async function actorReadiness(s: ActorReadinessSource): Promise<ReadinessCheck[]> {
  const timeoutMs = s.timeoutMs ?? 1000;
  const redis = s.redis();
  const registry = s.registry();
  const within = <T>(p: Promise<T>, fallback: T) => Promise.race([p.catch(() => fallback), new Promise<T>((r) => setTimeout(() => r(fallback), timeoutMs).unref())]);
  const pong = redis ? await within(redis.ping().then((x) => x === 'PONG'), false) : false;
  const self = registry?.self ?? null;
  const live = pong && self ? await within(registry!.isAlive(self.id), false) : false;
  return [
    { name: 'redis', ok: pong, ...(pong ? {} : { detail: redis ? `no PONG within ${timeoutMs} ms` : 'not connected yet' }) },
    { name: 'registered', ok: live, ...(live ? {} : { detail: self ? `record of ${self.id} is not live in Redis` : 'not registered yet' }) },
    { name: 'model', ok: s.warmed(), ...(s.warmed() ? {} : { detail: 'loading or warming up' }) },
    { name: 'not_draining', ok: !s.draining(), ...(s.draining() ? { detail: 'draining: takes no new work' } : {}) },
  ];
}
