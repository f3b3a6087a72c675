/**
 * Every Redis key, pub/sub channel and BullMQ queue name used by starq, built from one prefix
 * (@defaultValue `starq`) so a test can run under a random prefix and delete `${prefix}:*` after.
 *
 * Layout (prefix `starq`):
 *
 * | name                     | Redis type | content                                               |
 * | ------------------------ | ---------- | ----------------------------------------------------- |
 * | `starq:actor:{id}`       | string     | actor record (JSON), TTL = registry ttl               |
 * | `starq:actors`           | set        | ids of registered actors (may lag; records decide)    |
 * | `starq:inbox:{id}`       | channel    | msgpack messages to actor `id`                        |
 * | `starq:reply:{clientId}` | channel    | msgpack replies to one ActorClient                    |
 * | `starq:rpc-payload:{id}` | string     | a large RPC message (claim check), TTL, read once     |
 * | `starq:kv:{cacheId}`     | hash       | KV-cache handle (kv-handle.ts)                        |
 * | `starq:host-kv:{hostId}` | set        | cacheIds held by a host                               |
 * | `starq:ctx-ids:{hash}`   | string     | token ids of a context, raw little-endian Int32Array  |
 * | `starq:events:{reqId}`   | stream     | progress/token events of one request                  |
 * | `starq:bull:{queue}:*`   | (BullMQ)   | queues `blocks`, `requests` under BullMQ prefix `starq:bull` |
 *
 * BullMQ forbids ':' in queue names, so queue names are bare (`blocks`) and the namespace goes in
 * BullMQ's own `prefix` option ({@link RedisKeys.bullPrefix}).
 */
import { InvalidInputError } from './errors';

/** Prefix used when none is given. */
export const DEFAULT_KEY_PREFIX = 'starq';

/** BullMQ queue names (bare: no ':' allowed by BullMQ). */
export const QUEUE_NAMES = {
  /** Phase-1 block-encoding jobs (children of a request flow). */
  blocks: 'blocks',
  /** Request jobs (flow parents). */
  requests: 'requests',
} as const;

export type QueueName = (typeof QUEUE_NAMES)[keyof typeof QUEUE_NAMES];

const PREFIX_RE = /^[A-Za-z0-9_.:-]+$/;

function part(name: string, value: string): string {
  if (typeof value !== 'string' || value.length === 0 || /\s/.test(value)) {
    throw new InvalidInputError('invalid_key_part', `${name} must be a non-empty string without whitespace (got ${JSON.stringify(value)})`, name);
  }
  return value;
}

export class RedisKeys {
  /** BullMQ `prefix` option for all starq queues. */
  readonly bullPrefix: string;
  /** SCAN/KEYS pattern matching every key under this prefix (BullMQ's included). */
  readonly pattern: string;

  /**
   * @param prefix - namespace of all keys and channels; letters, digits, `_ . : -`.
   * @defaultValue `starq`
   */
  constructor(readonly prefix: string = DEFAULT_KEY_PREFIX) {
    if (typeof prefix !== 'string' || !PREFIX_RE.test(prefix)) {
      throw new InvalidInputError('invalid_key_prefix', `Redis key prefix must match ${PREFIX_RE} (got ${JSON.stringify(prefix)})`, 'prefix');
    }
    this.bullPrefix = `${prefix}:bull`;
    this.pattern = `${prefix}:*`;
  }

  /** Actor record (string, JSON, with TTL). */
  actor(actorId: string): string {
    return `${this.prefix}:actor:${part('actorId', actorId)}`;
  }

  /** Set of registered actor ids. */
  actors(): string {
    return `${this.prefix}:actors`;
  }

  /** Pub/sub channel an actor listens on. */
  inbox(actorId: string): string {
    return `${this.prefix}:inbox:${part('actorId', actorId)}`;
  }

  /** Pub/sub channel one client receives its replies on. */
  replyChannel(clientId: string): string {
    return `${this.prefix}:reply:${part('clientId', clientId)}`;
  }

  /** A large RPC message parked for its receiver (claim check; see libs/actors/src/claim-check.ts). */
  rpcPayload(id: string): string {
    return `${this.prefix}:rpc-payload:${part('payloadId', id)}`;
  }

  /** KV-cache handle hash of one cache (block). */
  kvHandle(cacheId: string): string {
    return `${this.prefix}:kv:${part('cacheId', cacheId)}`;
  }

  /** Set of cacheIds a host holds. */
  hostKvIndex(hostId: string): string {
    return `${this.prefix}:host-kv:${part('hostId', hostId)}`;
  }

  /** Token ids of a context (binary Int32Array), by context hash. */
  contextIds(contextHash: string): string {
    return `${this.prefix}:ctx-ids:${part('contextHash', contextHash)}`;
  }

  /** Event stream of one request. */
  requestEvents(requestId: string): string {
    return `${this.prefix}:events:${part('requestId', requestId)}`;
  }

  /** BullMQ queue names; pass {@link bullPrefix} as the queue's `prefix`. */
  get queues(): typeof QUEUE_NAMES {
    return QUEUE_NAMES;
  }
}
