/**
 * The calling side of actor RPC. One client = one reply channel (one subscriber connection) shared
 * by all its calls; replies are matched to calls by id.
 *
 * A call is published once on the actor's inbox (at most once: no automatic retry, the caller
 * decides). It fails:
 * - at once with ActorDiedError when nobody subscribes to the inbox (PUBLISH reached 0 receivers);
 * - after `timeoutMs` with ActorTimeoutError, or ActorDiedError when the actor's registry record
 *   expired meanwhile (it died during the call);
 * - with RemoteCallError (remote code/message/param) when the handler threw.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { InvalidInputError, RedisKeys, decode, encode, message, type Message, type ReplyMessage } from '@starq/protocol';
import { ActorHandle } from './actor-handle';
import { DEFAULT_INLINE_LIMIT_BYTES, isPayloadRef, publishMessage, resolveMessage } from './claim-check';
import { SERVER_ERROR_CODES } from './actor-server';
import { ActorClientClosedError, ActorDiedError, ActorTimeoutError, CallAbortedError, RemoteCallError } from './errors';
import { duplicateRedis } from './redis';
import { ActorRegistry, type ActorLiveness } from './registry';

export interface CallOptions {
  /** Time to wait for the reply; also sets the call's deadline. @defaultValue the client's defaultTimeoutMs */
  timeoutMs?: number;
  /** Abort waiting (the actor may still run the call). */
  signal?: AbortSignal;
}

export interface ActorClientOptions {
  /** Key layout. @defaultValue `new RedisKeys()` */
  keys?: RedisKeys;
  /** Connection used for SUBSCRIBE to the reply channel. @defaultValue `duplicateRedis(redis)`, closed by close() */
  subscriber?: Redis;
  /** Registry used to tell a dead actor from a slow one on timeout. @defaultValue `new ActorRegistry(redis, { keys })` */
  registry?: ActorLiveness;
  /** Names the reply channel. @defaultValue random 16 hex digits */
  clientId?: string;
  /** @defaultValue 30000 */
  defaultTimeoutMs?: number;
  /**
   * While calls are pending, check this often whether their actors are still alive in the
   * registry; calls to an actor whose record expired fail with ActorDiedError at once instead of
   * waiting for their timeout. 0 disables the check. @defaultValue 1000
   */
  livenessCheckMs?: number;
  /** Reports replies that match no pending call or cannot be decoded. @defaultValue ignore */
  onStrayReply?: (info: string) => void;
  /** Calls larger than this travel as a claim check (claim-check.ts). @defaultValue 1 MiB */
  inlineLimitBytes?: number;
}

interface Pending {
  actorId: string;
  startedAt: number;
  method: string;
  timeoutMs: number;
  resolve: (v: any) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  cleanup?: () => void;
}

export class ActorClient {
  readonly keys: RedisKeys;
  readonly clientId: string;
  readonly replyChannel: string;
  readonly defaultTimeoutMs: number;
  /** Replies that matched no pending call (late after a timeout, or duplicates) or were malformed. */
  strayReplies = 0;

  private readonly subscriber: Redis;
  private readonly ownSubscriber: boolean;
  private readonly registry: ActorLiveness;
  private readonly pendingCalls = new Map<string, Pending>();
  private readonly channelBuf: Buffer;
  private readonly inlineLimit: number;
  private readonly onStrayReply: (info: string) => void;
  private seq = 0;
  private subscribed = false;
  private subscribing: Promise<void> | null = null;
  private closed = false;
  private readonly livenessCheckMs: number;
  private livenessTimer: NodeJS.Timeout | null = null;
  private readonly listener = (channel: Buffer, data: Buffer) => {
    if (!channel.equals(this.channelBuf)) return;
    if (!isPayloadRef(data)) {
      this.onReply(data);
      return;
    }
    // Replies are matched by id, so a parked one may be handled after later small ones.
    resolveMessage(this.redis, data).then(
      (buf) => this.onReply(buf),
      (err: Error) => {
        this.strayReplies++;
        this.onStrayReply(`lost reply on ${this.replyChannel}: ${err.message}`);
      },
    );
  };

  constructor(
    private readonly redis: Redis,
    opts: ActorClientOptions = {},
  ) {
    this.keys = opts.keys ?? new RedisKeys();
    this.clientId = opts.clientId ?? randomBytes(8).toString('hex');
    this.replyChannel = this.keys.replyChannel(this.clientId);
    this.inlineLimit = opts.inlineLimitBytes ?? DEFAULT_INLINE_LIMIT_BYTES;
    this.channelBuf = Buffer.from(this.replyChannel);
    this.defaultTimeoutMs = opts.defaultTimeoutMs ?? 30000;
    this.ownSubscriber = !opts.subscriber;
    this.subscriber = opts.subscriber ?? duplicateRedis(redis);
    this.registry = opts.registry ?? new ActorRegistry(redis, { keys: this.keys });
    this.onStrayReply = opts.onStrayReply ?? (() => undefined);
    this.livenessCheckMs = opts.livenessCheckMs ?? 1000;
  }

  /** Calls in flight. */
  get pending(): number {
    return this.pendingCalls.size;
  }

  /** A handle to `actorId` (no I/O; the actor need not exist yet). */
  handle(actorId: string): ActorHandle {
    this.keys.inbox(actorId); // validates the id
    return new ActorHandle(this, actorId);
  }

  /** Subscribes the reply channel (done lazily by the first call; call it to pay the cost up front). */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(new ActorClientClosedError(`ActorClient ${this.clientId}`));
    if (this.subscribed) return Promise.resolve();
    if (!this.subscribing) {
      this.subscriber.on('messageBuffer', this.listener);
      this.subscribing = this.subscriber.subscribe(this.replyChannel).then(
        () => {
          this.subscribed = true;
        },
        (err: Error) => {
          this.subscriber.off('messageBuffer', this.listener);
          this.subscribing = null;
          throw err;
        },
      );
    }
    return this.subscribing;
  }

  /** See {@link ActorHandle.call}. */
  async call<T = unknown>(actorId: string, method: string, args?: unknown, opts: CallOptions = {}): Promise<T> {
    if (this.closed) throw new ActorClientClosedError(`ActorClient ${this.clientId}`);
    const timeoutMs = opts.timeoutMs ?? this.defaultTimeoutMs;
    if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
      throw new InvalidInputError('invalid_timeout', `timeoutMs must be a positive finite number of ms (got ${timeoutMs})`, 'timeoutMs');
    }
    if (opts.signal?.aborted) throw new CallAbortedError(actorId, method);
    const inbox = this.keys.inbox(actorId);
    if (!this.subscribed) {
      try {
        await this.start();
      } catch (err) {
        if (this.closed) throw new ActorClientClosedError(`ActorClient ${this.clientId}`);
        throw err;
      }
      if (this.closed) throw new ActorClientClosedError(`ActorClient ${this.clientId}`);
    }
    const id = (++this.seq).toString(36);
    const buf = encode(message('call', { id, from: this.replyChannel, method, args, deadline: Date.now() + timeoutMs }));

    return new Promise<T>((resolve, reject) => {
      const p: Pending = {
        actorId,
        startedAt: Date.now(),
        method,
        timeoutMs,
        resolve,
        reject,
        timer: setTimeout(() => this.onTimeout(id), timeoutMs),
      };
      if (opts.signal) {
        const signal = opts.signal;
        const onAbort = () => this.settle(id, new CallAbortedError(actorId, method));
        signal.addEventListener('abort', onAbort, { once: true });
        p.cleanup = () => signal.removeEventListener('abort', onAbort);
      }
      this.pendingCalls.set(id, p);
      this.armLivenessCheck();
      publishMessage(this.redis, this.keys, inbox, buf, { inlineLimit: this.inlineLimit, ttlMs: timeoutMs }).then(
        (receivers) => {
          if (receivers === 0) this.settle(id, new ActorDiedError(actorId, method, 'no process subscribes to its inbox'));
        },
        (err: Error) => this.settle(id, err),
      );
    });
  }

  /** Publishes a non-call message to an actor's inbox; resolves to the number of receivers (0: nobody). */
  async send(actorId: string, msg: Exclude<Message, { kind: 'call' | 'reply' }>): Promise<number> {
    if (this.closed) throw new ActorClientClosedError(`ActorClient ${this.clientId}`);
    return this.redis.publish(this.keys.inbox(actorId), encode(msg));
  }

  /** Fails pending calls with ActorClientClosedError and closes the reply subscription. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.livenessTimer) clearTimeout(this.livenessTimer);
    for (const id of [...this.pendingCalls.keys()]) this.settle(id, new ActorClientClosedError(`ActorClient ${this.clientId}`));
    this.subscriber.off('messageBuffer', this.listener);
    try {
      if (this.ownSubscriber) await this.subscriber.quit();
      else if (this.subscribed || this.subscribing) await this.subscriber.unsubscribe(this.replyChannel);
    } catch {
      if (this.ownSubscriber) this.subscriber.disconnect();
    }
  }

  /** Runs the liveness check while calls are pending (see `livenessCheckMs`). */
  private armLivenessCheck(): void {
    if (this.livenessCheckMs <= 0 || this.livenessTimer || this.closed) return;
    this.livenessTimer = setTimeout(() => {
      this.livenessTimer = null;
      void this.checkLiveness().finally(() => {
        if (this.pendingCalls.size > 0) this.armLivenessCheck();
      });
    }, this.livenessCheckMs);
    this.livenessTimer.unref();
  }

  private async checkLiveness(): Promise<void> {
    const cutoff = Date.now() - this.livenessCheckMs;
    const actors = new Set([...this.pendingCalls.values()].filter((p) => p.startedAt <= cutoff).map((p) => p.actorId));
    for (const actorId of actors) {
      const alive = await this.registry.isAlive(actorId).catch(() => true); // unsure: let the timeout decide
      if (alive) continue;
      for (const [id, p] of [...this.pendingCalls]) {
        if (p.actorId === actorId) this.settle(id, new ActorDiedError(actorId, p.method, 'its registry record expired while the call was pending'));
      }
    }
  }

  /** Removes a pending call and rejects (Error) or resolves (anything else) it. */
  private settle(id: string, outcome: Error | { value: unknown }): void {
    const p = this.pendingCalls.get(id);
    if (!p) return;
    this.pendingCalls.delete(id);
    clearTimeout(p.timer);
    p.cleanup?.();
    if (outcome instanceof Error) p.reject(outcome);
    else p.resolve(outcome.value);
  }

  private onTimeout(id: string): void {
    const p = this.pendingCalls.get(id);
    if (!p) return;
    this.pendingCalls.delete(id); // a late reply is now stray
    p.cleanup?.();
    this.registry.isAlive(p.actorId).then(
      (alive) =>
        p.reject(
          alive
            ? new ActorTimeoutError(p.actorId, p.method, p.timeoutMs)
            : new ActorDiedError(p.actorId, p.method, `no reply within ${p.timeoutMs} ms and its registry heartbeat expired`),
        ),
      (err: Error) => p.reject(new ActorTimeoutError(p.actorId, p.method, p.timeoutMs, `the registry could not be checked either (${err.message})`)),
    );
  }

  private onReply(data: Buffer): void {
    let msg: Message;
    try {
      msg = decode(data);
    } catch (err) {
      this.strayReplies++;
      this.onStrayReply(`malformed reply on ${this.replyChannel}: ${(err as Error).message}`);
      return;
    }
    if (msg.kind !== 'reply' || !this.pendingCalls.has(msg.id)) {
      this.strayReplies++;
      this.onStrayReply(`stray ${msg.kind} on ${this.replyChannel}${msg.kind === 'reply' ? ` (id ${msg.id}: no pending call)` : ''}`);
      return;
    }
    this.settle(msg.id, this.outcome(msg, this.pendingCalls.get(msg.id)!));
  }

  private outcome(r: ReplyMessage, p: Pending): Error | { value: unknown } {
    if (r.ok) return { value: r.result };
    const e = r.error!;
    switch (e.code) {
      case SERVER_ERROR_CODES.deadlineExceeded:
        return new ActorTimeoutError(p.actorId, p.method, p.timeoutMs, `the call waited in the actor's queue past its deadline (${e.message})`);
      case SERVER_ERROR_CODES.stopped:
        return new ActorDiedError(p.actorId, p.method, 'it is shutting down');
      default:
        return new RemoteCallError(p.actorId, p.method, e);
    }
  }
}
