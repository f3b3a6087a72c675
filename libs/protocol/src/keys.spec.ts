import { InvalidInputError } from './errors';
import { DEFAULT_KEY_PREFIX, QUEUE_NAMES, RedisKeys } from './keys';

describe('RedisKeys', () => {
  it('builds every name from the prefix', () => {
    const k = new RedisKeys('t-1');
    const names = [
      k.actor('h1'),
      k.actors(),
      k.inbox('h1'),
      k.replyChannel('c1'),
      k.kvHandle('ctx:x/b0'),
      k.hostKvIndex('h1'),
      k.contextIds('abc'),
      k.requestEvents('r1'),
      k.bullPrefix,
    ];
    for (const n of names) expect(n.startsWith('t-1:')).toBe(true);
    expect(new Set(names).size).toBe(names.length);
    expect(k.pattern).toBe('t-1:*');
    expect(k.inbox('h1')).toBe('t-1:inbox:h1');
    expect(k.kvHandle('ctx:x/b0')).toBe('t-1:kv:ctx:x/b0');
  });

  it('defaults to the starq prefix', () => {
    expect(DEFAULT_KEY_PREFIX).toBe('starq');
    expect(new RedisKeys().actor('a')).toBe('starq:actor:a');
    expect(new RedisKeys().bullPrefix).toBe('starq:bull');
  });

  it('queue names are BullMQ-safe (no colon)', () => {
    for (const q of Object.values(QUEUE_NAMES)) expect(q).not.toContain(':');
    expect(new RedisKeys('x').queues.blocks).toBe('blocks');
  });

  it('rejects bad prefixes and empty ids', () => {
    expect(() => new RedisKeys('')).toThrow(InvalidInputError);
    expect(() => new RedisKeys('a*b')).toThrow(/prefix must match/);
    expect(() => new RedisKeys('a b')).toThrow(InvalidInputError);
    expect(() => new RedisKeys('t').inbox('')).toThrow(/actorId must be a non-empty string/);
    expect(() => new RedisKeys('t').kvHandle('a b')).toThrow(/cacheId/);
  });
});
