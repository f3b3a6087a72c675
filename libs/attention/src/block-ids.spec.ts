/**
 * Block cache ids: a `cache: false` request's private ids never equal a shared id of the same
 * context (nor another request's), and `isPrivateOf` recognises exactly the request's own block ids.
 */
import { blockCacheId, isPrivateOf, privateBlockKey } from './host';

const KEY = 'ctx:abc:star:b64:a64:0123';

it('private block ids are distinct from the shared ids and from other requests\'', () => {
  const shared = [0, 1, 2].map((k) => blockCacheId(KEY, k));
  const mine = [0, 1, 2].map((k) => blockCacheId(privateBlockKey(KEY, 'r1'), k));
  const theirs = [0, 1, 2].map((k) => blockCacheId(privateBlockKey(KEY, 'r2'), k));
  expect(new Set([...shared, ...mine, ...theirs]).size).toBe(9);
  expect(mine[1]).toBe(`${KEY}/req:r1/b1`);
});

it('isPrivateOf: the request\'s own block ids only', () => {
  const priv = privateBlockKey(KEY, 'r1');
  expect(isPrivateOf(blockCacheId(priv, 0), priv)).toBe(true);
  expect(isPrivateOf(blockCacheId(priv, 12), priv)).toBe(true);
  expect(isPrivateOf(blockCacheId(KEY, 0), priv)).toBe(false);
  expect(isPrivateOf(blockCacheId(privateBlockKey(KEY, 'r10'), 0), priv)).toBe(false);
  expect(isPrivateOf(blockCacheId(privateBlockKey(KEY, 'r1x'), 0), priv)).toBe(false);
  expect(isPrivateOf(`${priv}/query`, priv)).toBe(false);
});
