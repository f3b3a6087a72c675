/**
 * Actor RPC round trip: what one call costs on each transport (the phase-2 hot path makes one per
 * host per layer per step; docs/DESIGN.md §9.1). One `ActorServer` per transport in this process
 * — one reached over Redis pub/sub, one over a direct link on loopback TCP — and sequential calls
 * (one in flight), for arguments from an empty call to a 4 MiB Float32Array (a claim check on
 * pub/sub). The reply is small. Prints a table (median, p90, p99) and optionally JSON.
 *
 * Usage: npx tsx bench/rpc.ts [--calls 1000] [--json FILE]
 *   (Redis at STARQ_REDIS_URL, default redis://127.0.0.1:6379; keys under a random prefix, deleted)
 */
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { ActorClient, ActorRegistry, ActorServer, closeRedis, createRedis, deleteKeysByPrefix } from '@starq/actors';
import { RedisKeys } from '@starq/protocol';
import { markdownTable, textTable } from '@starq/report';
import { arg, argStr } from './lib/args';

const CALLS = arg('--calls', 1000);
const JSON_FILE = argStr('--json', '');
const REDIS = process.env.STARQ_REDIS_URL || 'redis://127.0.0.1:6379';

/** The arguments measured: a name, their size and a factory. */
const PAYLOADS: { name: string; bytes: number; args: () => unknown }[] = [
  { name: 'empty call ({i})', bytes: 0, args: () => ({ i: 1 }) },
  { name: 'decode q, 1 row (8 heads × 64)', bytes: 8 * 64 * 4, args: () => ({ q: new Float32Array(8 * 64) }) },
  { name: '64 KiB Float32Array', bytes: 65536, args: () => ({ q: new Float32Array(16384) }) },
  { name: '1 MiB Float32Array', bytes: 1 << 20, args: () => ({ q: new Float32Array(262144 - 64) }) },
  { name: '4 MiB Float32Array', bytes: 4 << 20, args: () => ({ q: new Float32Array(1 << 20) }) },
];

const TRANSPORTS = [
  { name: 'pub/sub', id: 'svc-pubsub', link: undefined },
  { name: 'direct link (tcp)', id: 'svc-link', link: 'tcp://127.0.0.1:0' },
] as const;

const quantile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];

async function main(): Promise<void> {
  const keys = new RedisKeys(`bench-rpc-${randomBytes(4).toString('hex')}`);
  const redis = await createRedis(REDIS, { connectionName: 'bench-rpc' });
  const registries: ActorRegistry[] = [];
  const servers: ActorServer[] = [];
  const client = new ActorClient(redis, { keys, registry: new ActorRegistry(redis, { keys }), defaultTimeoutMs: 30000 });
  const rows: Record<string, string | number>[] = [];
  try {
    for (const t of TRANSPORTS) {
      const server = new ActorServer(redis, { actorId: t.id, keys, ...(t.link ? { link: t.link } : {}) });
      server.method('ack', () => 1);
      await server.start();
      servers.push(server);
      const registry = new ActorRegistry(redis, { keys });
      await registry.register({ id: t.id, type: 'bench', capacity: {}, status: {}, ...(t.link ? { link: server.linkAddress! } : {}) });
      registries.push(registry);
    }
    for (const t of TRANSPORTS) {
      const h = client.handle(t.id);
      for (const p of PAYLOADS) {
        const calls = p.bytes >= 1 << 20 ? Math.max(20, Math.floor(CALLS / 10)) : CALLS;
        const args = p.args();
        for (let i = 0; i < Math.min(50, calls); i++) await h.call('ack', args); // warm up
        const times: number[] = [];
        for (let i = 0; i < calls; i++) {
          const t0 = performance.now();
          await h.call('ack', args);
          times.push(performance.now() - t0);
        }
        times.sort((a, b) => a - b);
        const via = client.transportTo(t.id);
        if ((via === 'link') !== !!t.link) throw new Error(`${t.name}: the calls went over ${via}`);
        rows.push({ transport: t.name, payload: p.name, calls, median: quantile(times, 0.5), p90: quantile(times, 0.9), p99: quantile(times, 0.99) });
        process.stderr.write(`${t.name}, ${p.name}: ${calls} calls\n`);
      }
    }
  } finally {
    await client.close();
    for (const s of servers) await s.stop();
    for (const r of registries) await r.deregister();
    await deleteKeysByPrefix(redis, keys.prefix);
    await closeRedis(redis);
  }
  const columns = [
    { key: 'transport', title: 'transport', align: 'left' as const },
    { key: 'payload', title: 'argument', align: 'left' as const },
    { key: 'calls', title: 'calls' },
    { key: 'median', title: 'median (ms)', digits: 3 },
    { key: 'p90', title: 'p90 (ms)', digits: 3 },
    { key: 'p99', title: 'p99 (ms)', digits: 3 },
  ];
  console.log(textTable(columns, rows));
  console.log('\n' + markdownTable(columns, rows));
  if (JSON_FILE) fs.writeFileSync(JSON_FILE, JSON.stringify({ redis: REDIS, rows }, null, 2) + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
