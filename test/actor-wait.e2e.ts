/**
 * The actor-wait deadline holds for every request, whoever submitted it (libs/cluster
 * actor-wait.ts), on a real cluster (host and query-actor processes, STARQ_ACTOR_WAIT_MS = 3 s,
 * Redis at 127.0.0.1:6379 under a random prefix, no gateway):
 *
 * - a request submitted with StarqClient (as `starq generate --redis` does) whose query actor dies
 *   while its blocks encode, with nobody following it: the hosts fail it with
 *   `query_actor_unavailable` after the deadline (an error event on its stream);
 * - the same when its only host dies during phase 1: the query actor fails it with
 *   `host_unavailable`;
 * - no actor of either kind left: `StarqClient.wait` itself fails it after its `actorWaitMs`.
 */
import { StarqClient, type RequestEvent } from '@starq/cluster';
import { writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { randomTokenIds, TmpDirs } from '@starq/testing';
import { killGroup, TestCluster, until, waitExit } from './helpers/cluster';

jest.setTimeout(180000);

const WAIT_MS = 3000;
const tmp = new TmpDirs();
let cluster: TestCluster;

beforeAll(async () => {
  const modelDir = tmp.make('starq-actor-wait-model-');
  writeRandomCheckpoint(modelDir, { architecture: 'llama', hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 128, maxPositions: 4096, dtype: 'F32', tied: false, sharded: false, seed: 41 });
  // Each block takes ≥ 250 ms to encode: phase 1 of 16 blocks on one host lasts seconds.
  cluster = await TestCluster.start({ modelDir, hosts: 1, queryActors: 1, env: { STARQ_ACTOR_WAIT_MS: String(WAIT_MS), STARQ_TEST_ENCODE_DELAY_MS: '250' } });
}, 180000);

afterAll(async () => {
  await cluster?.stop();
  tmp.cleanup();
});

/** Submits a 16-block request through the test cluster's own StarqClient (nobody calls wait()). */
async function submit(seed: number, client: StarqClient = cluster.client): Promise<string> {
  const sub = await client.submit({
    model: cluster.model,
    mode: 'star',
    blockSize: 64,
    contextIds: [1, ...randomTokenIds(1023, 128, seed, 3)],
    queryIds: [5],
    maxNewTokens: 4,
    sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 },
    stopIds: [],
  });
  return sub.requestId;
}

/** The request's first error event, read from its stream. */
function errorEvent(id: string, ms: number): Promise<Extract<RequestEvent, { type: 'error' }>['error']> {
  return until(
    `an error event on request ${id}`,
    async () => {
      const entries = (await cluster.redis.xrange(cluster.keys.requestEvents(id), '-', '+')) as [string, string[]][];
      const e = entries.map(([, f]) => JSON.parse(f[1]) as RequestEvent).find((x): x is Extract<RequestEvent, { type: 'error' }> => x.type === 'error');
      return e?.error ?? null;
    },
    ms,
    100,
  );
}

async function killAll(kind: 'host' | 'query'): Promise<void> {
  for (const a of kind === 'host' ? cluster.hosts() : cluster.queryActors()) {
    killGroup(a.proc, 'SIGKILL');
    await waitExit(a.proc, 5000);
  }
}

it('no query actor: the hosts fail a StarqClient request nobody follows with query_actor_unavailable', async () => {
  const id = await submit(1);
  await killAll('query');
  const t0 = Date.now();
  const err = await errorEvent(id, 60000);
  expect(err.code).toBe('query_actor_unavailable');
  expect(err.message).toMatch(/STARQ_ACTOR_WAIT_MS = 3000 ms/);
  expect(Date.now() - t0).toBeGreaterThanOrEqual(WAIT_MS);
  expect((await cluster.registry.list()).map((a) => a.type)).toEqual(['host']); // only hosts were there to fail it
  await cluster.addQueryActors(1);
});

it('no host: the query actor fails a StarqClient request nobody follows with host_unavailable', async () => {
  const id = await submit(2);
  await until(
    'a block to be encoded',
    async () => {
      const job = await cluster.client.requests.getJob(id);
      return ((await job?.getDependenciesCount({ processed: true }))?.processed ?? 0) > 0;
    },
    60000,
    50,
  );
  await killAll('host');
  const err = await errorEvent(id, 60000);
  expect(err.code).toBe('host_unavailable');
  expect((await cluster.registry.list()).map((a) => a.type)).toEqual(['query']);
  await cluster.addHosts(1);
});

it('no actor at all: StarqClient.wait fails the request after its actorWaitMs', async () => {
  const client = await StarqClient.connect(cluster.opts.redisUrl, { prefix: cluster.prefix, actorWaitMs: WAIT_MS });
  try {
    const id = await submit(3, client);
    await killAll('query');
    await killAll('host');
    await expect(client.wait(id)).rejects.toMatchObject({ code: 'host_unavailable', status: 503 });
    expect(await cluster.registry.list()).toEqual([]);
  } finally {
    await client.close();
  }
});
