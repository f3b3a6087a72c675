/**
 * Actor registry in Redis: each live actor has a record key with a TTL that its heartbeat keeps
 * refreshing. A process that dies (or whose event loop stalls longer than `ttlMs`) disappears from
 * the registry when the TTL runs out; a clean shutdown removes the record at once.
 *
 * One ActorRegistry instance registers at most one actor (the local one); any instance can look
 * up all actors.
 *
 * Heartbeats are timers on the main thread: they keep flowing while the process computes in
 * worker threads, but a main-thread stall longer than `ttlMs` makes the actor look dead (calls
 * to it then fail with ActorDiedError on timeout). Keep heavy compute off the main thread.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { InvalidInputError, RedisKeys } from '@starq/protocol';
import { ActorIdInUseError } from './errors';

/**
 * What a registered actor is: its kind (chosen by the application, e.g. `'worker' | 'driver'`),
 * inbox address, what it can take on (`Capacity`, fixed at registration) and process identity.
 */
export interface ActorInfo<Kind extends string = string, Capacity = unknown> {
  id: string;
  type: Kind;
  /** Inbox channel. */
  address: string;
  /** Direct-link address callers may use instead of the inbox (`ActorServer.linkAddress`); absent: pub/sub only. */
  link?: string;
  capacity: Capacity;
  pid: number;
  hostname: string;
  /** Epoch ms. */
  startedAt: number;
}

/** The record stored in Redis; `Status` is what the actor is doing now ({@link ActorRegistry.update}). */
export interface ActorRecord<Kind extends string = string, Capacity = unknown, Status = unknown> extends ActorInfo<Kind, Capacity> {
  status: Status;
  /** Epoch ms of the last heartbeat (sender's clock). */
  heartbeatAt: number;
  /** Random per registration: tells a restarted actor with the same id from the old one. */
  incarnation: string;
}

/** Registration input; omitted fields take the defaults shown. */
export interface RegisterInput<Kind extends string = string, Capacity = unknown, Status = unknown> {
  id: string;
  type: Kind;
  capacity: Capacity;
  status: Status;
  /** @defaultValue `keys.inbox(id)` */
  address?: string;
  /** Direct-link address to advertise (`ActorServer.linkAddress`). @defaultValue none (pub/sub only) */
  link?: string | null;
  /** @defaultValue `process.pid` */
  pid?: number;
  /** @defaultValue `os.hostname()` */
  hostname?: string;
  /** @defaultValue `Date.now()` */
  startedAt?: number;
}

export interface ActorRegistryOptions<Kind extends string = string> {
  /** Key layout. @defaultValue `new RedisKeys()` (prefix `starq`) */
  keys?: RedisKeys;
  /** Heartbeat period. @defaultValue 1000 */
  heartbeatMs?: number;
  /** Record TTL; an actor is dead when no heartbeat came for this long. Must exceed heartbeatMs. @defaultValue 5000 */
  ttlMs?: number;
  /** Called when a heartbeat write fails (the next one retries). @defaultValue console.warn */
  onHeartbeatError?: (err: Error) => void;
  /**
   * The actor kinds this registry accepts: `register` refuses others and `get`/`list` skip records
   * of other kinds. @defaultValue any non-empty string
   */
  kinds?: readonly Kind[];
}

/** What callers ask the registry: is the actor alive (a dead actor or a slow one?), and how to reach it. */
export interface ActorLiveness {
  /** True while the actor's record exists (heartbeat within the registry's ttlMs). */
  isAlive(actorId: string): Promise<boolean>;
  /** The actor's live record — its direct-link address (if any) and machine — or null. */
  get(actorId: string): Promise<Pick<ActorInfo, 'link' | 'hostname'> | null>;
}

/**
 * @typeParam Kind - actor kinds of the application.
 * @typeParam Capacity - what an actor declares it can take on, fixed at registration.
 * @typeParam Status - what an actor is doing now, merged by {@link update}.
 */
export class ActorRegistry<Kind extends string = string, Capacity extends object = Record<string, unknown>, Status extends object = Record<string, unknown>>
  implements ActorLiveness
{
  readonly keys: RedisKeys;
  readonly heartbeatMs: number;
  readonly ttlMs: number;
  private readonly onHeartbeatError: (err: Error) => void;
  private readonly kinds: readonly Kind[] | null;
  private record: ActorRecord<Kind, Capacity, Status> | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly redis: Redis,
    opts: ActorRegistryOptions<Kind> = {},
  ) {
    this.keys = opts.keys ?? new RedisKeys();
    this.heartbeatMs = opts.heartbeatMs ?? 1000;
    this.ttlMs = opts.ttlMs ?? 5000;
    if (!(this.heartbeatMs > 0)) throw new InvalidInputError('invalid_heartbeat', `heartbeatMs must be > 0 (got ${this.heartbeatMs})`, 'heartbeatMs');
    if (!(this.ttlMs > this.heartbeatMs)) {
      throw new InvalidInputError('invalid_heartbeat', `ttlMs (${this.ttlMs}) must exceed heartbeatMs (${this.heartbeatMs}); use ttlMs ≥ 3 × heartbeatMs`, 'ttlMs');
    }
    this.kinds = opts.kinds ? [...opts.kinds] : null;
    this.onHeartbeatError = opts.onHeartbeatError ?? ((err) => console.warn(`[starq] registry heartbeat failed: ${err.message}`));
  }

  /** A copy of the local actor's current record, or null when not registered. */
  get self(): ActorRecord<Kind, Capacity, Status> | null {
    return this.record ? structuredClone(this.record) : null;
  }

  /**
   * Registers the local actor and starts heartbeating; returns (a copy of) its record.
   * @throws ActorIdInUseError when a live record with this id exists.
   */
  async register(input: RegisterInput<Kind, Capacity, Status>): Promise<ActorRecord<Kind, Capacity, Status>> {
    if (this.record) {
      throw new InvalidInputError('already_registered', `this registry already registered actor ${this.record.id}; use one ActorRegistry per actor`, 'id');
    }
    if (!this.isKind(input.type)) {
      const expected = this.kinds ? `one of ${this.kinds.join(', ')}` : 'a non-empty string';
      throw new InvalidInputError('invalid_actor_type', `actor type must be ${expected} (got ${JSON.stringify(input.type)})`, 'type');
    }
    const key = this.keys.actor(input.id);
    const rec: ActorRecord<Kind, Capacity, Status> = {
      id: input.id,
      type: input.type,
      address: input.address ?? this.keys.inbox(input.id),
      ...(input.link ? { link: input.link } : {}),
      capacity: { ...input.capacity },
      pid: input.pid ?? process.pid,
      hostname: input.hostname ?? hostname(),
      startedAt: input.startedAt ?? Date.now(),
      status: { ...input.status },
      heartbeatAt: Date.now(),
      incarnation: randomBytes(8).toString('hex'),
    };
    const ok = await this.redis.set(key, JSON.stringify(rec), 'PX', this.ttlMs, 'NX');
    if (ok !== 'OK') {
      const other = await this.get(input.id);
      throw new ActorIdInUseError(input.id, other ? `pid ${other.pid} on ${other.hostname}` : 'unknown holder', this.ttlMs);
    }
    await this.redis.sadd(this.keys.actors(), input.id);
    this.record = rec;
    this.timer = setInterval(() => {
      this.heartbeat().catch((err: Error) => this.onHeartbeatError(err));
    }, this.heartbeatMs);
    this.timer.unref();
    return structuredClone(rec);
  }

  /** Writes the record now and refreshes its TTL (the timer does this every heartbeatMs). */
  async heartbeat(): Promise<void> {
    const rec = this.record;
    if (!rec) return;
    rec.heartbeatAt = Date.now();
    await this.redis
      .multi()
      .set(this.keys.actor(rec.id), JSON.stringify(rec), 'PX', this.ttlMs)
      .sadd(this.keys.actors(), rec.id)
      .exec();
  }

  /** Merges `partial` into the local actor's status and writes the record now. */
  async update(partial: Partial<Status>): Promise<void> {
    if (!this.record) throw new InvalidInputError('not_registered', 'update() before register(): register the actor first', 'status');
    Object.assign(this.record.status, partial);
    await this.heartbeat();
  }

  /** Stops heartbeating and removes the local actor's record (only if it is still ours). */
  async deregister(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const rec = this.record;
    this.record = null;
    if (!rec) return;
    const cur = await this.get(rec.id);
    if (cur && cur.incarnation !== rec.incarnation) return; // someone else took the id
    await this.redis.multi().del(this.keys.actor(rec.id)).srem(this.keys.actors(), rec.id).exec();
  }

  /** A live actor's record, or null (never registered, deregistered, or heartbeat expired). */
  async get(actorId: string): Promise<ActorRecord<Kind, Capacity, Status> | null> {
    return this.parseRecord(await this.redis.get(this.keys.actor(actorId)));
  }

  /** True while the actor's record exists (heartbeat within ttlMs). */
  async isAlive(actorId: string): Promise<boolean> {
    return (await this.redis.exists(this.keys.actor(actorId))) === 1;
  }

  /** Live actors (optionally of one type), sorted by id. Prunes ids whose record expired from the set. */
  async list(type?: Kind): Promise<ActorRecord<Kind, Capacity, Status>[]> {
    const ids = await this.redis.smembers(this.keys.actors());
    if (ids.length === 0) return [];
    const jsons = await this.redis.mget(ids.map((id) => this.keys.actor(id)));
    const out: ActorRecord<Kind, Capacity, Status>[] = [];
    const stale: string[] = [];
    jsons.forEach((json, i) => {
      const rec = this.parseRecord(json);
      if (!rec) {
        if (json === null) stale.push(ids[i]);
        return;
      }
      if (!type || rec.type === type) out.push(rec);
    });
    if (stale.length) await this.redis.srem(this.keys.actors(), ...stale);
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  private isKind(type: unknown): type is Kind {
    return typeof type === 'string' && type.length > 0 && (this.kinds === null || this.kinds.includes(type as Kind));
  }

  /** A stored record, or null when absent, unreadable or of a kind this registry does not accept. */
  private parseRecord(json: string | null): ActorRecord<Kind, Capacity, Status> | null {
    if (json === null) return null;
    try {
      const r = JSON.parse(json) as ActorRecord<Kind, Capacity, Status>;
      return typeof r === 'object' && r !== null && typeof r.id === 'string' && this.isKind(r.type) ? r : null;
    } catch {
      return null;
    }
  }
}
