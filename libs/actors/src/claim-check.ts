/**
 * Large RPC messages travel as a claim check. Redis disconnects a pub/sub subscriber whose output
 * buffer passes `client-output-buffer-limit pubsub` (default 32 MB hard, 8 MB for 60 s) — a few
 * K/V blocks of a long context (Ring Attention ships 16 MiB per 32K-token block per layer) would
 * silently kill the receiver's subscription and lose the message. So a message larger than
 * `inlineLimitBytes` is stored under its own key (`keys.rpcPayload(id)`, with a TTL) and the
 * channel carries only a small reference; the receiver takes it with GETDEL (read once).
 *
 * A reference starts with 0xC1, a byte msgpack never uses, so it cannot be mistaken for a message.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { RedisKeys } from '@starq/protocol';

/** Messages up to this size go inline on the channel. @defaultValue 1 MiB */
export const DEFAULT_INLINE_LIMIT_BYTES = 1 << 20;

const MAGIC = Buffer.from([0xc1, 0x73, 0x71, 0x72, 0x65, 0x66]); // 0xC1 "sqref"

export class PayloadExpiredError extends Error {
  constructor(key: string) {
    super(`RPC payload ${key} is gone (expired before it was read, or read twice)`);
    this.name = 'PayloadExpiredError';
  }
}

export function isPayloadRef(data: Buffer): boolean {
  return data.length > MAGIC.length && data.subarray(0, MAGIC.length).equals(MAGIC);
}

/**
 * PUBLISH `buf` on `channel`, parking it under a key first when it is larger than `inlineLimit`.
 * Resolves to the number of receivers (0: nobody subscribed — the parked copy is deleted).
 */
export async function publishMessage(redis: Redis, keys: RedisKeys, channel: string, buf: Buffer, opts: { inlineLimit: number; ttlMs: number }): Promise<number> {
  if (buf.length <= opts.inlineLimit) return redis.publish(channel, buf);
  const key = keys.rpcPayload(randomBytes(12).toString('hex'));
  await redis.set(key, buf, 'PX', Math.max(1000, Math.ceil(opts.ttlMs)));
  const receivers = await redis.publish(channel, Buffer.concat([MAGIC, Buffer.from(key)]));
  if (receivers === 0) await redis.del(key);
  return receivers;
}

/** The message a channel delivered: itself, or the parked message its reference points to (taken once). */
export async function resolveMessage(redis: Redis, data: Buffer): Promise<Buffer> {
  if (!isPayloadRef(data)) return data;
  const key = data.subarray(MAGIC.length).toString();
  const buf = await redis.getdelBuffer(key);
  if (!buf) throw new PayloadExpiredError(key);
  return buf;
}
