/**
 * Supervision in `starq cluster up` (real processes, Redis at 127.0.0.1:6379 under a random
 * prefix, a generated random model):
 *
 * - a SIGKILLed host is restarted (new actor id, after a backoff); `starq cluster status` and the
 *   gateway's /admin show it restarting or starting — never as alive while it is down — and then
 *   alive again; jobs submitted afterwards complete;
 * - an actor that dies more than --max-restarts times within --restart-window is given up on and
 *   shown `dead`;
 * - with --no-restart a dead query actor stays dead (status says so);
 * - --api-key-file: the key works and appears in no process's command line;
 * - a SIGKILLed `cluster up` leaves nothing behind: its actors and gateway see their parent gone
 *   (STARQ_EXIT_WITH_PARENT=1, set by the launcher), drain and exit.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Redis } from 'ioredis';
import { createRedis } from '@starq/actors';
import { ClusterRegistry } from '@starq/cluster';
import { RedisKeys } from '@starq/protocol';
import { writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { TmpDirs } from '@starq/testing';
import { deletePrefix, randomPrefix, REDIS_URL, spawnTracked, stopProcess, until, waitExit } from './helpers/cluster';
import { request } from './helpers/gateway';

jest.setTimeout(240000);

const tmp = new TmpDirs();
let modelDir = '';
let redis: Redis;
const prefixes: string[] = [];

beforeAll(async () => {
  modelDir = tmp.make('starq-sup-model-');
  writeRandomCheckpoint(modelDir, { architecture: 'llama', hidden: 32, intermediate: 64, layers: 1, heads: 2, kvHeads: 1, vocab: 96, maxPositions: 1024, dtype: 'F32', tied: true, sharded: false, seed: 5 });
  redis = await createRedis(REDIS_URL, { connectionName: 'starq-e2e-supervision' });
});

afterAll(async () => {
  for (const p of prefixes) await deletePrefix(redis, p).catch(() => undefined);
  redis?.disconnect();
  tmp.cleanup();
});

async function clusterUp(args: string[], env: NodeJS.ProcessEnv = process.env) {
  const prefix = randomPrefix('sup');
  prefixes.push(prefix);
  const up = spawnTracked(['bin/starq', 'cluster', 'up', '--redis', REDIS_URL, '--prefix', prefix, '--model', modelDir, '--port', '0', ...args], env);
  const line = await until(
    '`ready {...}` from starq cluster up',
    async () => {
      if (up.proc.exitCode !== null) throw new Error(`cluster up exited (${up.proc.exitCode}):\n${up.out()}`);
      return up.stdout().split('\n').find((l) => l.startsWith('ready ')) ?? null;
    },
    150000,
  );
  const ready = JSON.parse(line.slice(6)) as { hosts: string[]; queryActors: string[]; gateway?: string };
  const registry = new ClusterRegistry(redis, { keys: new RedisKeys(prefix) });
  const status = async () => {
    const s = spawnTracked(['bin/starq', 'cluster', 'status', '--redis', REDIS_URL, '--prefix', prefix, '--json'], process.env);
    await waitExit(s.proc, 60000);
    return JSON.parse(s.stdout()).actors as { id: string; type: string; state: string; alive: boolean; restarts: number; lastExit: string | null; pid: number | null }[];
  };
  const stop = async () => {
    up.proc.kill('SIGINT');
    if (!(await waitExit(up.proc, 30000))) await stopProcess(up.proc, 1000);
  };
  return { prefix, up, ready, registry, status, stop };
}

describe('starq cluster up supervises its actors', () => {
  it('restarts a SIGKILLed host with backoff, shows it restarting then alive, and gives up after --max-restarts', async () => {
    const c = await clusterUp(['--hosts', '1', '--max-restarts', '2', '--restart-window', '120', '--restart-backoff', '1500']);
    try {
      const killHost = async (id: string) => {
        const rec = await c.registry.get(id);
        expect(rec).not.toBeNull();
        process.kill(rec!.pid, 'SIGKILL');
        return rec!.pid;
      };
      let hostId = c.ready.hosts[0];
      for (let round = 1; round <= 2; round++) {
        await killHost(hostId);
        // While it is down (backoff 1.5 s, 3 s), status never calls it alive.
        const rows = await until('status to show the host down', async () => ((r) => (r.some((a) => a.type === 'host' && a.state !== 'alive') ? r : null))(await c.status()), 30000, 200);
        const hostRows = rows.filter((a) => a.type === 'host');
        expect(hostRows).toHaveLength(1); // the dead incarnation's lingering registry record is not listed as alive
        expect(['restarting', 'starting']).toContain(hostRows[0].state);
        expect(hostRows[0].alive).toBe(false);
        // It comes back under a new id.
        const back = await until('the host to be alive again', async () => (await c.status()).find((a) => a.type === 'host' && a.alive) ?? null, 120000, 300);
        expect(back.id).not.toBe(hostId);
        expect(back.id).toMatch(new RegExp(`-r${round}$`));
        hostId = back.id;
      }
      expect(c.up.out()).toMatch(/host-actor-0 \(.*\) exited \(SIGKILL\); its KV blocks are lost .*restarting in \d+ ms/);
      // The cluster works with the restarted host.
      const job = await request(c.ready.gateway!, 'POST', '/v1/jobs', { body: { contextIds: [1, 2, 3, 4, 5, 6], queryIds: [7], maxNewTokens: 3 } });
      expect(job.status).toBe(202);
      const done = await until('the job to complete', async () => ((j) => (j.status === 'completed' ? j : null))((await request(c.ready.gateway!, 'GET', `/v1/jobs/${job.json.id}`)).json), 60000, 200);
      expect(done.result.generatedIds).toHaveLength(3);
      // A third death within the window exceeds --max-restarts 2: given up, shown dead.
      await killHost(hostId);
      const dead = await until('status to show the host dead', async () => (await c.status()).find((a) => a.type === 'host' && a.state === 'dead') ?? null, 30000, 300);
      expect(dead).toMatchObject({ alive: false, restarts: 2, lastExit: 'killed by SIGKILL' });
      expect(c.up.out()).toMatch(/giving up: 2 restarts within 120 s/);
    } finally {
      await c.stop();
    }
  });

  it('--no-restart leaves a dead query actor dead (status and /admin say so); --api-key-file keeps the key out of ps', async () => {
    const keyFile = path.join(tmp.make('starq-sup-key-'), 'keys');
    const key = `sk-file-${Math.random().toString(36).slice(2)}`;
    const admin = `sk-admin-${Math.random().toString(36).slice(2)}`;
    fs.writeFileSync(keyFile, `# gateway keys\n${key}\n`);
    const c = await clusterUp(['--hosts', '1', '--no-restart', '--api-key-file', keyFile], { ...process.env, STARQ_ADMIN_KEY: admin });
    try {
      const ps = fs
        .readdirSync('/proc')
        .filter((d) => /^\d+$/.test(d))
        .map((d) => {
          try {
            return fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
          } catch {
            return '';
          }
        });
      expect(ps.some((cmd) => cmd.includes(c.prefix))).toBe(true); // the cluster's own command line is there
      expect(ps.some((cmd) => cmd.includes(key))).toBe(false);
      expect((await request(c.ready.gateway!, 'GET', '/v1/models', { key })).status).toBe(200);
      expect((await request(c.ready.gateway!, 'GET', '/v1/models', { key: 'sk-wrong' })).status).toBe(401);

      const q = await c.registry.get(c.ready.queryActors[0]);
      process.kill(q!.pid, 'SIGKILL');
      const dead = await until('status to show the query actor dead', async () => (await c.status()).find((a) => a.type === 'query' && a.state === 'dead') ?? null, 30000, 300);
      expect(dead).toMatchObject({ id: c.ready.queryActors[0], alive: false, restarts: 0, lastExit: 'killed by SIGKILL' });
      expect(c.up.out()).toMatch(/query-actor-0 \(.*\) exited \(SIGKILL\); not restarted \(restart policy never\)/);
      expect(c.up.out()).not.toMatch(/query-actor-0 .*KV blocks are lost/); // query actors hold none
      const overview = await request(c.ready.gateway!, 'GET', '/admin/overview', { key: admin });
      expect(overview.status).toBe(200);
      expect(overview.json.actors.find((a: { id: string }) => a.id === c.ready.queryActors[0])).toMatchObject({ type: 'query', state: 'dead', lastExit: 'killed by SIGKILL' });
      expect(overview.json.actors.find((a: { id: string }) => a.id === c.ready.hosts[0])).toMatchObject({ type: 'host', state: 'alive' });
    } finally {
      await c.stop();
    }
  });

  it('a SIGKILLed `cluster up` leaves no actor or gateway running (they exit with their parent)', async () => {
    const c = await clusterUp(['--hosts', '1']);
    const children = childrenOf(c.up.proc.pid!);
    try {
      expect(children.length).toBe(3); // host, query actor, gateway
      c.up.proc.kill('SIGKILL');
      await until('the launcher\'s children to exit', async () => (children.every((pid) => !running(pid)) ? true : null), 60000);
    } finally {
      for (const pid of children.filter(running)) process.kill(pid, 'SIGKILL');
    }
  });
});

/** Pids whose parent is `ppid` (from /proc). */
function childrenOf(ppid: number): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => statOf(Number(d))?.ppid === ppid)
    .map(Number);
}

/** True while `pid` exists and is not a zombie. */
function running(pid: number): boolean {
  const s = statOf(pid);
  return s !== null && s.state !== 'Z';
}

function statOf(pid: number): { state: string; ppid: number } | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // state ppid ...
    return { state: rest[0], ppid: Number(rest[1]) };
  } catch {
    return null;
  }
}
