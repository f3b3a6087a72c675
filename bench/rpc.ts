/**
 * Actor RPC round trip: what one call over Redis pub/sub costs (the phase-2 hot path makes one
 * per host per layer per token; docs/DESIGN.md §9.1). A caller and an `ActorServer` in this
 * process, sequential calls (one in flight), for payloads from an empty call to a claim-checked
 * 4 MiB Float32Array. Prints a table (median, p90, p99) and optionally JSON.
 *
 * Usage: npx tsx bench/rpc.ts [--calls 1000] [--json FILE]
 *   (Redis at STARQ_REDIS_URL, default redis://127.0.0.1:6379; keys under a random prefix, deleted)
 */
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { ActorClient, ActorRegistry, ActorServer, closeRedis, createRedis, deleteKeysByPrefix } from '@starq/actors';
import { RedisKeys } from '@starq/protocol';
import { arg, argStr } from './lib/args';
import { markdownTable, textTable } from '@starq/report';

const CALLS = arg('--calls', 1000);
const JSON_FILE = argStr('--json', '');
const REDIS = process.env.STARQ_REDIS_URL || 'redis://127.0.0.1:6379';

/** The payloads measured: a name and the call's argument. */
const PAYLOADS: { name: string; bytes: number; args: () => unknown }[] = [
  { name: 'empty call ({i})', bytes: 0, args: () => ({ i: 1 }) },
  { name: 'decode q, 1 row (8 heads × 64)', bytes: 8 * 64 * 4, args: () => ({ q: new Float32Array(8 * 64) }) },
  { name: '64 KiB Float32Array', bytes: 65536, args: () => ({ q: new Float32Array(16384) }) },
  { name: '1 MiB Float32Array (inline)', bytes: 1 << 20, args: () => ({ q: new Float32Array(262144 - 64) }) },
  { name: '4 MiB Float32Array (claim check)', bytes: 4 << 20, args: () => ({ q: new Float32Array(1 << 20) }) },
];

const quantile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];

async function main(): Promise<void> {
  const keys = new RedisKeys(`bench-rpc-${randomBytes(4).toString('hex')}`);
  const redis = await createRedis(REDIS, { connectionName: 'bench-rpc' });
  const registry = new ActorRegistry(redis, { keys });
  await registry.register({ id: 'svc', type: 'bench', capacity: {}, status: {} });
  const server = new ActorServer(redis, { actorId: 'svc', keys });
  server.method('echo', (a: unknown) => a);
  server.method('ack', () => 1);
  await server.start();
  const client = new ActorClient(redis, { keys, registry, defaultTimeoutMs: 30000 });
  const rows: Record<string, string | number>[] = [];
  try {
    const h = client.handle('svc');
    for (const p of PAYLOADS) {
      const calls = p.bytes >= 1 << 20 ? Math.max(20, Math.floor(CALLS / 10)) : CALLS;
      const args = p.args();
      for (let i = 0; i < Math.min(50, calls); i++) await h.call('ack', args); // warm up
      const times: number[] = [];
      for (let i = 0; i < calls; i++) {
        const t0 = performance.now();
        await h.call('ack', args); // the payload travels out; a small reply comes back
        times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      rows.push({ payload: p.name, calls, median: quantile(times, 0.5), p90: quantile(times, 0.9), p99: quantile(times, 0.99) });
      process.stderr.write(`${p.name}: ${calls} calls done\n`);
    }
  } finally {
    await client.close();
    await server.stop();
    await registry.deregister();
    await deleteKeysByPrefix(redis, keys.prefix);
    await closeRedis(redis);
  }
  const columns = [
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
