/**
 * `starq cluster up` — a local cluster: N host-actor processes and one query actor against a
 * Redis (the given one, the default 127.0.0.1:6379, or — when none is reachable — a
 * `redis-server` it starts on a free loopback port). Prints one `ready {...}` line on stdout when
 * every actor has registered, stays in the foreground, restarts actors that exit (restart policy,
 * backoff, giving up after --max-restarts within --restart-window), and on SIGINT/SIGTERM stops
 * every process it started (hosts release their KV handles) and exits 0 (a signal before `ready`
 * exits 130 / 143).
 *
 * `starq cluster status` — the actors of a cluster: live ones from the registry, and restarting or
 * dead ones from the supervisors of `starq cluster up` processes.
 */
import fs from 'node:fs';
import type { Command } from 'commander';
import { createRedis } from '@starq/actors';
import { actorStatusRows, ClusterRegistry, startProcessCluster, Supervisor, type RestartPolicyName } from '@starq/cluster';
import { InvalidInputError, RedisKeys } from '@starq/protocol';
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
    .option('--api-key <key>', 'gateway API key (repeatable; visible to other users in `ps`: prefer --api-key-file or STARQ_API_KEYS)', (v: string, acc: string[]) => [...acc, ...v.split(',')], [] as string[])
    .option('--api-key-file <file>', 'file of gateway API keys (one per line or comma-separated); default: $STARQ_API_KEYS')
    .option('--no-gateway', 'do not start the HTTP gateway')
    .option('--restart <policy>', 'restart an actor that exits: always | on-failure | never', 'always')
    .option('--no-restart', 'never restart an actor that exits (same as --restart never)')
    .option('--max-restarts <n>', 'restarts of one actor allowed within --restart-window; one more and it is given up on', '5')
    .option('--restart-window <s>', 'window for --max-restarts (seconds)', '60')
    .option('--restart-backoff <ms>', 'first delay before a restart (doubles per restart in the window, up to 10 s)', '500')
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
        const keys = new RedisKeys(f.prefix);
        const actors = actorStatusRows(await new ClusterRegistry(redis, { keys }).list(), await Supervisor.list(redis, keys), Date.now());
        if (f.json) {
          process.stdout.write(JSON.stringify({ redis: f.redis, prefix: f.prefix, actors }) + '\n');
          return;
        }
        if (actors.length === 0) process.stdout.write(`no actors under prefix ${f.prefix} at ${f.redis}\n`);
        for (const a of actors) {
          const what =
            a.state === 'alive'
              ? `model ${a.model}  ${a.executionProvider ?? '-'}  blocks ${a.blocks}  kv ${a.kvBytes} B  ${a.draining ? 'draining' : a.busy ? 'busy' : 'idle'}  heartbeat ${a.lastHeartbeatMsAgo} ms ago`
              : a.state === 'restarting'
                ? `restarting in ${Math.max(0, a.nextStartInMs ?? 0)} ms (${a.lastExit}; ${a.restarts} restarts so far)`
                : a.state === 'starting'
                  ? `starting (restart ${a.restarts})`
                  : `dead (${a.lastExit ?? 'exited'}; not restarted)`;
          process.stdout.write(`${a.id.padEnd(28)} ${a.type.padEnd(7)} ${a.state.padEnd(10)} ${what}  (${a.hostname}:${a.pid ?? '-'})\n`);
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
  apiKeyFile?: string;
  gateway: boolean;
  restart: string | false;
  maxRestarts: string;
  restartWindow: string;
  restartBackoff: string;
}

/** Keys from --api-key and --api-key-file (one per line or comma-separated; `#` comments). */
function apiKeys(f: ClusterUpFlags): string[] {
  const keys = [...f.apiKey];
  if (f.apiKeyFile !== undefined) {
    let text: string;
    try {
      text = fs.readFileSync(f.apiKeyFile, 'utf8');
    } catch (e) {
      throw new InvalidInputError('api_key_file_unreadable', `cannot read --api-key-file ${f.apiKeyFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, 'api-key-file');
    }
    const fromFile = text
      .split('\n')
      .filter((l) => !l.trim().startsWith('#'))
      .flatMap((l) => l.split(','));
    if (fromFile.every((k) => k.trim() === '')) throw new InvalidInputError('api_key_file_empty', `--api-key-file ${f.apiKeyFile} holds no key`, 'api-key-file');
    keys.push(...fromFile);
  }
  return keys.map((k) => k.trim()).filter((k) => k.length > 0);
}

async function clusterUp(f: ClusterUpFlags): Promise<void> {
  const cluster = await startProcessCluster({
    hosts: intFlag(f.hosts, 'hosts', 1)!,
    threads: intFlag(f.threads, 'threads', 1)!,
    kvLimit: intFlag(f.kvLimit, 'kv-limit', 1),
    prefix: f.prefix ?? defaultPrefix(),
    redisUrl: f.redis,
    modelDir: f.model ?? null,
    gateway: f.gateway ? { port: intFlag(f.port, 'port', 0)!, apiKeys: apiKeys(f) } : undefined,
    restart: {
      policy: (f.restart === false ? 'never' : f.restart) as RestartPolicyName,
      maxRestarts: intFlag(f.maxRestarts, 'max-restarts', 0)!,
      windowMs: intFlag(f.restartWindow, 'restart-window', 1)! * 1000,
      backoffMs: intFlag(f.restartBackoff, 'restart-backoff', 0)!,
    },
  });
  try {
    process.stdout.write(`ready ${JSON.stringify({ redis: cluster.redisUrl, prefix: cluster.prefix, model: cluster.modelDir, hosts: cluster.hostIds, queryActors: cluster.queryIds, ...(cluster.gatewayUrl ? { gateway: cluster.gatewayUrl } : {}) })}\n`);
    const sig = await untilStopped();
    process.stderr.write(`cluster: ${sig}: stopping\n`);
  } finally {
    await cluster.stop();
  }
}
