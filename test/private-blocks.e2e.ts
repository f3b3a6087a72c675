/**
 * `cache: false` blocks are private to their request, on a real cluster (2 host processes, 1 query
 * actor; Redis at 127.0.0.1:6379 under a random prefix):
 *
 * - an uncached request on a fresh context encodes its blocks under its private key
 *   (`privateBlockKey(contextKey, requestId)`): the shared ids stay empty while it runs, and its
 *   private blocks are released when it ends;
 * - a cached request on the same context submitted while the uncached one generates finds none of
 *   its blocks (it encodes the shared ones itself); the uncached one is then cancelled, releasing
 *   its blocks while the cached one generates: the cached one completes with the tokens of a run
 *   alone and never loses (re-encodes) a block;
 * - an uncached request on a cached context reuses the shared blocks and releases none of them.
 */
import * as path from 'node:path';
import { blockCacheId, planMode, privateBlockKey } from '../libs/attention/src';
import type { RequestEvent, SubmitRequest } from '@starq/cluster';
import { contextKey } from '../libs/protocol/src';
import { writeRandomCheckpoint, type RandomCheckpointOptions } from '@starq/model/synthetic/random-checkpoint';
import { TestCluster, until } from './helpers/cluster';
import { randomTokenIds, TmpDirs } from '@starq/testing';

jest.setTimeout(240000);

const OPTS: RandomCheckpointOptions = { architecture: 'llama', hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 128, maxPositions: 8192, dtype: 'F32', tied: false, sharded: false, seed: 23 };
const GREEDY = { temperature: 0, topK: 0, topP: 1, seed: 0 };

const tmp = new TmpDirs();
let cluster: TestCluster;
let modelId = '';

beforeAll(async () => {
  const modelDir = tmp.make('starq-private-model-');
  writeRandomCheckpoint(modelDir, OPTS);
  modelId = path.basename(modelDir);
  cluster = await TestCluster.start({ modelDir, hosts: 2, queryActors: 1 });
}, 180000);

afterAll(async () => {
  await cluster?.stop();
  tmp.cleanup();
});

const ctx = [1, ...randomTokenIds(511, OPTS.vocab, 9, 3)];
const plan = planMode('star', ctx.length, { blockSize: 64 });
const ask = (extra: Partial<SubmitRequest>): SubmitRequest => ({ model: modelId, mode: 'star', blockSize: 64, contextIds: ctx, queryIds: [7, 8], maxNewTokens: 16, sampling: GREEDY, stopIds: [], ignoreEos: true, ...extra });
const sharedIds = () => plan.blocks.map((b) => blockCacheId(contextKey({ model: modelId, mode: 'star', blockSize: plan.blockSize, anchorSize: plan.anchorSize, contextIds: ctx }), b.index));
const privateIds = (requestId: string) => plan.blocks.map((b) => blockCacheId(privateBlockKey(contextKey({ model: modelId, mode: 'star', blockSize: plan.blockSize, anchorSize: plan.anchorSize, contextIds: ctx }), requestId), b.index));
const heldCount = async (ids: string[]) => (await cluster.client.directory.getMany(ids)).filter((h) => h !== null).length;

/** Resolves when the request's BullMQ job is in one of `want` (its `finally` cleanup then ran). */
const jobEnded = (id: string, want: string[]) => until(`request ${id} in ${want.join('/')}`, async () => ((s) => want.includes(s))(await (await cluster.client.requests.getJob(id))!.getState()), 60000, 50);

it('a cached request never loses a block to an uncached one on the same context, and gets the tokens of a run alone', async () => {
  // Alone (uncached, fresh context): its blocks are private and gone afterwards; nothing is shared.
  const alone = await cluster.client.submit(ask({ cache: false }));
  expect(alone.blocksToEncode).toBe(plan.numBlocks);
  const reference = await cluster.client.wait(alone.requestId, {}, 90000);
  await jobEnded(alone.requestId, ['completed']);
  expect(await heldCount(privateIds(alone.requestId))).toBe(0);
  expect(await heldCount(sharedIds())).toBe(0);

  // A: uncached and long; B: cached, submitted while A generates.
  const a = await cluster.client.submit(ask({ cache: false, maxNewTokens: 4000 }));
  const aEvents: RequestEvent[] = [];
  const aDone = cluster.client.wait(a.requestId, { event: (e) => aEvents.push(e) }, 120000).catch((e: Error) => e);
  await until('A to generate', async () => aEvents.some((e) => e.type === 'token'), 90000, 50);
  expect(await heldCount(privateIds(a.requestId))).toBe(plan.numBlocks);
  expect(await heldCount(sharedIds())).toBe(0); // never announced as the context's blocks

  const b = await cluster.client.submit(ask({}));
  expect(b.blocksReused).toBe(0);
  const bEvents: RequestEvent[] = [];
  const bDone = cluster.client.wait(b.requestId, { event: (e) => bEvents.push(e) }, 120000);
  await until('B to start', async () => bEvents.some((e) => e.type === 'started'), 90000, 50);
  await cluster.client.cancel(a.requestId); // A ends (and releases its blocks) while B runs
  const bResult = await bDone;
  expect(((await aDone) as Error).message).toMatch(/cancelled/);
  await jobEnded(a.requestId, ['failed']);

  expect(bResult.generatedIds).toEqual(reference.generatedIds);
  expect({ encoded: bResult.blocksEncoded, reused: bResult.blocksReused, recovered: bResult.blocksRecovered }).toEqual({ encoded: plan.numBlocks, reused: 0, recovered: 0 });
  expect(bEvents.filter((e) => e.type === 'recovered')).toEqual([]);
  expect(await heldCount(privateIds(a.requestId))).toBe(0);
  expect(await heldCount(sharedIds())).toBe(plan.numBlocks);

  // C: uncached on the now cached context reuses every shared block and leaves them cached.
  const c = await cluster.client.submit(ask({ cache: false }));
  expect(c.blocksReused).toBe(plan.numBlocks);
  const cResult = await cluster.client.wait(c.requestId, {}, 90000);
  await jobEnded(c.requestId, ['completed']);
  expect(cResult.generatedIds).toEqual(reference.generatedIds);
  expect(cResult.blocksReused).toBe(plan.numBlocks);
  expect(await heldCount(sharedIds())).toBe(plan.numBlocks);
  expect(await heldCount(privateIds(c.requestId))).toBe(0);
});
