/**
 * A tiny actor process for tests of the actor transports: serves `echo` (returns its args) and
 * `hang` (never answers) on pub/sub and on a direct link, registers itself, and prints one line
 * `ready {"actorId", "link", "pid"}` on stdout.
 *
 * Run its `main()` in a node process with tsx registered (as direct-link.spec.ts and bench/phase2.ts
 * do), with STARQ_REDIS_URL, STARQ_PREFIX, STARQ_ACTOR_ID (and optionally STARQ_LINK) in the
 * environment.
 */
import { RedisKeys } from '@starq/protocol';
import { ActorServer } from '../actor-server';
import { createRedis } from '../redis';
import { ActorRegistry } from '../registry';

export async function main(): Promise<void> {
  const redis = await createRedis(process.env.STARQ_REDIS_URL || undefined);
  const keys = new RedisKeys(process.env.STARQ_PREFIX);
  const actorId = process.env.STARQ_ACTOR_ID!;
  const server = new ActorServer(redis, { actorId, keys, link: process.env.STARQ_LINK === 'off' ? undefined : process.env.STARQ_LINK || 'tcp://127.0.0.1:0' });
  server.method('echo', (a: unknown) => a);
  server.method('hang', () => new Promise(() => undefined));
  await server.start();
  // A long TTL: only the link can tell the caller that this process died.
  const registry = new ActorRegistry(redis, { keys, heartbeatMs: 1000, ttlMs: 60000 });
  await registry.register({ id: actorId, type: 'echo', capacity: {}, status: {}, link: server.linkAddress });
  process.stdout.write(`ready ${JSON.stringify({ actorId, link: server.linkAddress, pid: process.pid })}\n`);
}
