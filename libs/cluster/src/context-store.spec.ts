/**
 * The context store over a real Redis, under a random key prefix: a block job's segments come back
 * exactly as the whole context's ids sliced, the length is checked, a missing context is null.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { phase1Tokens, planStar } from '@starq/attention';
import { closeRedis, createRedis, deleteKeysByPrefix } from '@starq/actors';
import { RedisKeys } from '@starq/protocol';
import { ContextLengthMismatchError, fetchContextIds, fetchContextSegments, storeContextIds } from './context-store';

const keys = new RedisKeys(`t-ctx-${randomBytes(4).toString('hex')}`);
let redis: Redis;

beforeAll(async () => {
  redis = await createRedis();
});
afterAll(async () => {
  await deleteKeysByPrefix(redis, keys.prefix);
  await closeRedis(redis);
});

describe('fetchContextSegments', () => {
  // ids chosen so every token differs from its neighbours and crosses byte boundaries (> 255, negative)
  const N = 1000;
  const ids = Array.from({ length: N }, (_, i) => (i * 7919 + 13) % 70001 - 1000);

  it('returns each block\'s anchor ++ block, equal to slicing the whole context (every block of a plan, a < b and a = b)', async () => {
    await storeContextIds(redis, keys, 'h1', ids, 60);
    expect(Array.from((await fetchContextIds(redis, keys, 'h1'))!)).toEqual(ids);
    for (const [b, a] of [[128, 128], [96, 17], [1000, 1000], [333, 0]]) {
      const plan = planStar({ contextLength: N, blockSize: b, anchorSize: a, hosts: 1 });
      for (const blk of plan.blocks) {
        const got = await fetchContextSegments(redis, keys, 'h1', blk.phase1.segments, N);
        expect(Array.from(got!)).toEqual(phase1Tokens(ids, blk.phase1));
      }
    }
  });

  it('empty ranges give no ids; a gone context is null', async () => {
    await storeContextIds(redis, keys, 'h2', ids, 60);
    expect(Array.from((await fetchContextSegments(redis, keys, 'h2', [{ start: 5, end: 5 }, { start: 10, end: 12 }], N))!)).toEqual(ids.slice(10, 12));
    expect(await fetchContextSegments(redis, keys, 'nope', [{ start: 0, end: 4 }], N)).toBeNull();
  });

  it('a stored context of another length is ContextLengthMismatchError; a range outside the context a RangeError', async () => {
    await storeContextIds(redis, keys, 'h3', ids, 60);
    await expect(fetchContextSegments(redis, keys, 'h3', [{ start: 0, end: 4 }], N + 1)).rejects.toThrow(ContextLengthMismatchError);
    await expect(fetchContextSegments(redis, keys, 'h3', [{ start: 0, end: 4 }], N + 1)).rejects.toThrow(`context h3 has ${N} tokens, the job says ${N + 1}`);
    await expect(fetchContextSegments(redis, keys, 'h3', [{ start: 990, end: 1001 }], N)).rejects.toThrow(RangeError);
  });
});
