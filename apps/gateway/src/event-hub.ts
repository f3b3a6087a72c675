/**
 * Follows many requests' event streams (`keys.requestEvents(id)`, written by the query actor and
 * by cancel) over ONE Redis connection: a single blocking XREAD names every followed stream. A new
 * subscription wakes the blocked read at once (CLIENT UNBLOCK), so it sees events with no delay.
 *
 * Several subscribers may follow one stream from different positions; each gets every entry after
 * its own position, in stream order, exactly once.
 */
import type { Redis } from 'ioredis';
import { duplicateRedis } from '@starq/actors';
import type { RequestEvent } from '@starq/cluster';

export type EventListener = (e: RequestEvent, entryId: string) => void;

interface Sub {
  last: string;
  listener: EventListener;
}

/** Stream entry ids `ms-seq` compared numerically ('0' = before everything). */
export function compareEntryIds(a: string, b: string): number {
  const [am, as = '0'] = a.split('-');
  const [bm, bs = '0'] = b.split('-');
  return Number(am) - Number(bm) || Number(as) - Number(bs);
}

/** Epoch ms at which a stream entry was added (from its id). */
export function entryTime(entryId: string): number {
  return Number(entryId.split('-')[0]);
}

export class EventHub {
  private reader!: Redis;
  private readerId = 0;
  private readonly subs = new Map<string, Set<Sub>>();
  private loopDone: Promise<void> | null = null;
  private closed = false;
  private blocked = false;
  private readSeq = 0;
  private wake: (() => void) | null = null;
  /** The last read failed (logged once per outage). */
  private failing = false;

  constructor(
    private readonly redis: Redis,
    private readonly streamKey: (requestId: string) => string,
    private readonly log: (msg: string) => void = (m) => process.stderr.write(m + '\n'),
  ) {}

  async start(): Promise<void> {
    this.reader = duplicateRedis(this.redis, () => undefined, { connectionName: 'starq-gateway-events' }); // outages are logged by the read loop
    this.readerId = Number(await this.reader.client('ID'));
    this.loopDone = this.loop();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.kick();
    this.reader?.disconnect();
    await this.loopDone?.catch(() => undefined);
  }

  /** Streams followed now (for metrics and tests). */
  get size(): number {
    return this.subs.size;
  }

  /** Calls `listener` for every entry after `from` ('0' = the whole stream); returns unsubscribe. */
  subscribe(requestId: string, listener: EventListener, from = '0'): () => void {
    const key = this.streamKey(requestId);
    let set = this.subs.get(key);
    if (!set) this.subs.set(key, (set = new Set()));
    const sub: Sub = { last: from, listener };
    set.add(sub);
    this.kick();
    return () => {
      set!.delete(sub);
      if (set!.size === 0 && this.subs.get(key) === set) this.subs.delete(key);
    };
  }

  /** Make the loop re-read its stream list now. */
  private kick(): void {
    if (this.wake) {
      const w = this.wake;
      this.wake = null;
      w();
      return;
    }
    if (!this.blocked) return;
    const seq = this.readSeq;
    // The XREAD may not have reached the server yet (UNBLOCK then answers 0): retry briefly.
    const unblock = async (tries: number): Promise<void> => {
      if (this.closed || !this.blocked || this.readSeq !== seq) return;
      const n = Number(await this.redis.client('UNBLOCK', this.readerId).catch(() => 0));
      if (n === 0 && tries > 0) {
        await new Promise((r) => setTimeout(r, 5));
        return unblock(tries - 1);
      }
    };
    void unblock(40);
  }

  private async loop(): Promise<void> {
    while (!this.closed) {
      if (this.subs.size === 0) {
        await new Promise<void>((r) => (this.wake = r));
        continue;
      }
      const keys = [...this.subs.keys()];
      const ids = keys.map((k) => [...this.subs.get(k)!].map((s) => s.last).reduce((a, b) => (compareEntryIds(a, b) <= 0 ? a : b)));
      let res: [string, [string, string[]][]][] | null;
      this.blocked = true;
      this.readSeq++;
      try {
        res = (await this.reader.xread('COUNT', 1000, 'BLOCK', 2000, 'STREAMS', ...keys, ...ids)) as typeof res;
      } catch (e) {
        if (this.closed) return;
        if (!this.failing) this.log(`gateway: event stream read failed (retrying every 500 ms until it works): ${(e as Error).message}`);
        this.failing = true;
        await new Promise((r) => setTimeout(r, 500));
        continue;
      } finally {
        this.blocked = false;
      }
      if (this.failing) this.log('gateway: event stream reads work again');
      this.failing = false;
      const readFrom = new Map(keys.map((k, i) => [k, ids[i]]));
      for (const [key, entries] of res ?? []) {
        const set = this.subs.get(key);
        if (!set) continue;
        const from = readFrom.get(key)!;
        for (const [id, fields] of entries) {
          let e: RequestEvent;
          try {
            e = JSON.parse(fields[fields.indexOf('e') + 1]) as RequestEvent;
          } catch {
            continue; // not one of ours
          }
          for (const s of [...set]) {
            if (!set.has(s) || compareEntryIds(id, s.last) <= 0) continue; // unsubscribed meanwhile, or seen
            // Subscribed while this read was under way, from an earlier position than it read
            // from: the entries in between are missing here; the next read starts at its position.
            if (compareEntryIds(s.last, from) < 0) continue;
            s.last = id;
            try {
              s.listener(e, id);
            } catch (err) {
              this.log(`gateway: event listener failed: ${(err as Error).stack ?? err}`);
            }
          }
        }
      }
    }
  }
}
