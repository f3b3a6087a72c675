/**
 * `starq cluster up` — a local cluster: N host-actor processes and one query actor against a
 * Redis (the given one, the default 127.0.0.1:6379, or — when none is reachable — a
 * `redis-server` it starts on a free loopback port). Prints one `ready {...}` line on stdout when
 * every actor has registered, stays in the foreground, and on SIGINT/SIGTERM stops every process it
 * started (hosts release their KV handles) and exits 0 (a signal before `ready` exits 130 / 143).
 *
 * `starq cluster status` — the live actors of a cluster.
 */
import type { Command } from 'commander';
import { createRedis } from '@starq/actors';
import { ClusterRegistry, startProcessCluster } from '@starq/cluster';
import { RedisKeys } from '@starq/protocol';
import { intFlag } from '../options';
import { DEFAULT_REDIS_URL, defaultPrefix, envHelp, PREFIX_HELP, PREFIX_VAR } from '../cluster-flags';
import { untilStopped } from '../interrupt';

export function registerCluster(program: Command): void {
  const cluster = program.command('cluster').description('run or inspect a starq cluster');
  const up = cluster
    .command('up')
    .description('start N host actors and a query actor (and Redis if none is reachable); runs until SIGINT/SIGTERM, then stops them and exits 0')
    .option('--hosts <n>', 'host actor processes', '2')
    .option('--redis <url>', `Redis URL (default: ${DEFAULT_REDIS_URL}, else a private redis-server on a free port)`)
    .option('--model <dir>', 'model directory (default: ../shared/models/stories260K, else a generated tiny model)')
    .option('--threads <n>', 'ORT threads per actor', '1')
    .option('--prefix <p>', PREFIX_HELP)
    .option('--kv-limit <bytes>', 'KV memory limit per host in bytes')
    .option('--port <p>', 'HTTP gateway port (0 = any free port)', '8080')
    .option('--api-key <key>', 'gateway API key (repeatable; default: $STARQ_API_KEYS)', (v: string, acc: string[]) => [...acc, ...v.split(',')], [] as string[])
    .option('--no-gateway', 'do not start the HTTP gateway')
    .action(async (f: ClusterUpFlags) => {
      await clusterUp(f);
    });
  envHelp(up, [PREFIX_VAR, ['STARQ_API_KEYS', 'gateway API keys, comma-separated, when no --api-key is given'], ['STARQ_*', 'every other variable is passed on to the actors and the gateway (see docs/DEPLOY.md)']]);
  const status = cluster
    .command('status')
    .description('list the live actors of a cluster')
    .option('--redis <url>', `Redis URL (default: ${DEFAULT_REDIS_URL})`)
    .option('--prefix <p>', PREFIX_HELP)
    .option('--json', 'print one JSON object')
    .action(async (flags: { redis?: string; prefix?: string; json?: boolean }) => {
      const f = { redis: flags.redis ?? DEFAULT_REDIS_URL, prefix: flags.prefix ?? defaultPrefix(), json: flags.json };
      const redis = await createRedis(f.redis, { urlSource: '--redis' });
      try {
        const registry = new ClusterRegistry(redis, { keys: new RedisKeys(f.prefix) });
        const now = Date.now();
        const actors = (await registry.list()).map((a) => ({
          id: a.id,
          type: a.type,
          alive: true,
          model: a.capacity.model,
          blocks: a.status.blocks,
          kvBytes: a.status.kvBytes,
          busy: a.status.busy,
          draining: a.status.draining === true,
          executionProvider: a.capacity.executionProvider ? (a.capacity.executionProvider === 'cuda' ? `cuda:${a.capacity.cudaDeviceId ?? 0}` : a.capacity.executionProvider) : null,
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
          process.stdout.write(`${a.id.padEnd(28)} ${a.type.padEnd(6)} alive  model ${a.model}  ${a.executionProvider ?? '-'}  blocks ${a.blocks}  kv ${a.kvBytes} B  ${a.draining ? 'draining' : a.busy ? 'busy' : 'idle'}  heartbeat ${a.lastHeartbeatMsAgo} ms ago  (${a.hostname}:${a.pid})\n`);
        }
      } finally {
        redis.disconnect();
      }
    });
  envHelp(status, [PREFIX_VAR]);
}

interface ClusterUpFlags {
  hosts: string;
  redis?: string;
  model?: string;
  threads: string;
  prefix?: string;
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
    prefix: f.prefix ?? defaultPrefix(),
    redisUrl: f.redis,
    modelDir: f.model ?? null,
    gateway: f.gateway ? { port: intFlag(f.port, 'port', 0)!, apiKeys: f.apiKey.map((k) => k.trim()).filter((k) => k.length > 0) } : undefined,
  });
  try {
    process.stdout.write(`ready ${JSON.stringify({ redis: cluster.redisUrl, prefix: cluster.prefix, model: cluster.modelDir, hosts: cluster.hostIds, queryActors: cluster.queryIds, ...(cluster.gatewayUrl ? { gateway: cluster.gatewayUrl } : {}) })}\n`);
    const sig = await untilStopped();
    process.stderr.write(`cluster: ${sig}: stopping\n`);
  } finally {
    await cluster.stop();
  }
}
