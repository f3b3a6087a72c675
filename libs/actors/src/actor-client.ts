/**
 * The calling side of actor RPC. One client = one reply channel (one subscriber connection) shared
 * by all its calls; replies are matched to calls by id.
 *
 * Transport, per actor: on the first call to an actor the client reads its registry record; when
 * the record advertises a direct link (`ActorRecord.link`, direct-link.ts) reachable from here, the
 * client opens one connection to it and sends every call to that actor over it (replies come back
 * on it); otherwise the call is published on the actor's inbox channel (Redis pub/sub). The choice
 * holds until the actor is found dead (a call fails with ActorDiedError): then the next call looks
 * again. One transport at a time per actor keeps calls from one client in order.
 *
 * A call is sent once (at most once: no automatic retry, the caller decides). It fails:
 * - at once with ActorDiedError when nobody subscribes to the inbox (PUBLISH reached 0 receivers),
 *   or when the direct link it went out on closes before the reply came (the actor process died);
 * - after `timeoutMs` with ActorTimeoutError, or ActorDiedError when the actor's registry record
 *   expired meanwhile (it died during the call);
 * - with RemoteCallError (remote code/message/param) when the handler threw.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { Redis } from 'ioredis';
import { InvalidInputError, RedisKeys, decode, encode, message, type Message, type ReplyMessage, type ServerTrace } from '@starq/protocol';
import { ActorHandle } from './actor-handle';
import { DEFAULT_INLINE_LIMIT_BYTES, isPayloadRef, publishMessage, resolveMessage } from './claim-check';
import { SERVER_ERROR_CODES, preciseNow } from './call-runner';
import { DirectLink } from './direct-link';
import { isMachineLocal, parseLinkAddress } from './link-address';
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
  /** Use the direct links actors advertise (false: every call goes through Redis pub/sub). @defaultValue true */
  directLinks?: boolean;
  /** Time allowed to open a direct link (connect + handshake). @defaultValue 2000 */
  linkConnectTimeoutMs?: number;
  /**
   * Reports an advertised direct link this client does not use (unreachable, refused, or a
   * machine-local address of another machine); calls to that actor then go through pub/sub.
   * @defaultValue console.warn
   */
  onLinkFallback?: (info: string) => void;
  /** When set, every call asks the actor for its timestamps and this receives one trace per settled call. @defaultValue none */
  onTrace?: (trace: CallTrace) => void;
}

/** Where one call spent its time (epoch ms, sub-ms precision; actor-side points from {@link ServerTrace}). */
export interface CallTrace {
  actorId: string;
  method: string;
  transport: 'link' | 'pubsub';
  ok: boolean;
  requestBytes: number;
  replyBytes: number;
  /** `call()` entered. */
  called: number;
  /** The call message was encoded. */
  encoded: number;
  /** Handed to the socket (link) or to PUBLISH (after the transport was known). */
  sent: number;
  /** The reply's bytes arrived. */
  replied: number;
  /** The reply was decoded and the call settled. */
  settled: number;
  /** The actor's side; null when the reply carried none (an actor that does not trace). */
  server: ServerTrace | null;
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
  /** The direct link the call went out on (null: pub/sub, or not sent yet). */
  link: DirectLink | null;
  trace?: { called: number; encoded: number; sent: number; requestBytes: number };
}

/** How calls to one actor travel: resolved once (registry lookup + connect), reused until the actor is found dead. */
interface Route {
  ready: Promise<DirectLink | null>;
  /** Set once `ready` settled. */
  resolved: boolean;
  link: DirectLink | null;
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
  private readonly directLinks: boolean;
  private readonly linkConnectTimeoutMs: number;
  private readonly onLinkFallback: (info: string) => void;
  private readonly onTrace: ((trace: CallTrace) => void) | null;
  private readonly routes = new Map<string, Route>();
  private readonly links = new Set<DirectLink>();
  private readonly listener = (channel: Buffer, data: Buffer) => {
    if (!channel.equals(this.channelBuf)) return;
    const arrived = this.onTrace ? preciseNow() : 0;
    if (!isPayloadRef(data)) {
      this.onReply(data, arrived);
      return;
    }
    // Replies are matched by id, so a parked one may be handled after later small ones.
    resolveMessage(this.redis, data).then(
      (buf) => this.onReply(buf, arrived),
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
    this.directLinks = opts.directLinks ?? true;
    this.linkConnectTimeoutMs = opts.linkConnectTimeoutMs ?? 2000;
    this.onLinkFallback = opts.onLinkFallback ?? ((info) => console.warn(`[starq] ${info}`));
    this.onTrace = opts.onTrace ?? null;
  }

  /** The transport calls to `actorId` use now: 'link', 'pubsub', or null when not decided (no call made yet, the lookup still running, or the actor found dead). */
  transportTo(actorId: string): 'link' | 'pubsub' | null {
    const r = this.routes.get(actorId);
    if (!r?.resolved) return null;
    return r.link?.open ? 'link' : r.link ? null : 'pubsub';
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
    const called = this.onTrace ? preciseNow() : 0;
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
    const buf = encode(message('call', { id, from: this.replyChannel, method, args, deadline: Date.now() + timeoutMs, ...(this.onTrace ? { trace: true } : {}) }));
    const route = this.routeTo(actorId);

    return new Promise<T>((resolve, reject) => {
      const p: Pending = {
        actorId,
        startedAt: Date.now(),
        method,
        timeoutMs,
        resolve,
        reject,
        timer: setTimeout(() => this.onTimeout(id), timeoutMs),
        link: null,
        trace: this.onTrace ? { called, encoded: preciseNow(), sent: 0, requestBytes: buf.length } : undefined,
      };
      if (opts.signal) {
        const signal = opts.signal;
        const onAbort = () => this.settle(id, new CallAbortedError(actorId, method));
        signal.addEventListener('abort', onAbort, { once: true });
        p.cleanup = () => signal.removeEventListener('abort', onAbort);
      }
      this.pendingCalls.set(id, p);
      this.armLivenessCheck();
      // Calls to one actor wait on the same route promise, so they go out in the order made.
      void route.ready.then((link) => {
        if (this.pendingCalls.get(id) !== p) return; // settled (aborted, timed out, client closed) before it went out
        if (p.trace) p.trace.sent = preciseNow();
        if (link) {
          p.link = link;
          if (!link.send(buf)) this.settle(id, new ActorDiedError(actorId, method, `its direct link ${link.address} is closed`));
          return;
        }
        publishMessage(this.redis, this.keys, inbox, buf, { inlineLimit: this.inlineLimit, ttlMs: timeoutMs }).then(
          (receivers) => {
            if (receivers === 0) this.settle(id, new ActorDiedError(actorId, method, 'no process subscribes to its inbox'));
          },
          (err: Error) => this.settle(id, err),
        );
      });
    });
  }

  /** Publishes a one-way message (`tell`) to an actor's inbox; resolves to the number of receivers (0: nobody). */
  async send(actorId: string, topic: string, body?: unknown): Promise<number> {
    if (this.closed) throw new ActorClientClosedError(`ActorClient ${this.clientId}`);
    return this.redis.publish(this.keys.inbox(actorId), encode(message('tell', { topic, body })));
  }

  /** Fails pending calls with ActorClientClosedError and closes the reply subscription. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.livenessTimer) clearTimeout(this.livenessTimer);
    for (const id of [...this.pendingCalls.keys()]) this.settle(id, new ActorClientClosedError(`ActorClient ${this.clientId}`));
    for (const link of [...this.links]) link.closeWith('the client closed');
    this.routes.clear();
    this.subscriber.off('messageBuffer', this.listener);
    try {
      if (this.ownSubscriber) await this.subscriber.quit();
      else if (this.subscribed || this.subscribing) await this.subscriber.unsubscribe(this.replyChannel);
    } catch {
      if (this.ownSubscriber) this.subscriber.disconnect();
    }
  }

  /** The route of calls to `actorId`, resolving it on first use (registry record → direct link or pub/sub). */
  private routeTo(actorId: string): Route {
    const have = this.routes.get(actorId);
    if (have) return have;
    const route: Route = { ready: Promise.resolve(null), resolved: false, link: null };
    route.ready = (this.directLinks ? this.openLink(actorId, route) : route.ready).finally(() => (route.resolved = true));
    this.routes.set(actorId, route);
    return route;
  }

  private async openLink(actorId: string, route: Route): Promise<DirectLink | null> {
    let rec;
    try {
      rec = await this.registry.get(actorId);
    } catch {
      if (this.routes.get(actorId) === route) this.routes.delete(actorId); // decide again on the next call
      return null;
    }
    if (!rec?.link) return null;
    let local = false;
    try {
      local = isMachineLocal(parseLinkAddress(rec.link));
    } catch (err) {
      this.onLinkFallback(`actor ${actorId} advertises a bad direct link (${(err as Error).message}): calling it through Redis pub/sub`);
      return null;
    }
    if (local && rec.hostname !== os.hostname()) {
      this.onLinkFallback(`actor ${actorId} on ${rec.hostname} advertises the machine-local link ${rec.link}, unreachable from ${os.hostname()}: calling it through Redis pub/sub (set its link to a routable address)`);
      return null;
    }
    let link: DirectLink;
    try {
      link = await DirectLink.connect(rec.link, actorId, {
        connectTimeoutMs: this.linkConnectTimeoutMs,
        onFrame: (buf) => this.onReply(buf, this.onTrace ? preciseNow() : 0),
        onClose: (reason) => this.onLinkClosed(actorId, link, reason),
      });
    } catch (err) {
      this.onLinkFallback(`${(err as Error).message}: calling actor ${actorId} through Redis pub/sub`);
      return null;
    }
    if (this.closed || this.routes.get(actorId) !== route) {
      link.closeWith('the client closed');
      return null;
    }
    this.links.add(link);
    route.link = link;
    return link;
  }

  /** A direct link closed: its calls in flight will get no reply — the actor is lost to them. */
  private onLinkClosed(actorId: string, link: DirectLink, reason: string): void {
    this.links.delete(link);
    if (this.routes.get(actorId)?.link === link) this.routes.delete(actorId);
    for (const [id, p] of [...this.pendingCalls]) {
      if (p.link === link) this.settle(id, new ActorDiedError(actorId, p.method, `its direct link ${link.address} closed while the call was in flight (${reason})`));
    }
  }

  /** The actor was found dead: forget how to reach it (the next call looks it up again); `closeLink` also closes its link. */
  private forgetRoute(actorId: string, closeLink: boolean): void {
    const r = this.routes.get(actorId);
    if (!r) return;
    this.routes.delete(actorId);
    if (r.link && closeLink) {
      this.links.delete(r.link);
      r.link.closeWith('the actor was found dead');
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
      this.forgetRoute(actorId, true);
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
    // Found dead: the next call looks the actor up again. A link stays open for replies still due on
    // it (an actor that is stopping drains its running calls) and closes when the actor closes it.
    if (outcome instanceof ActorDiedError) this.forgetRoute(p.actorId, false);
    if (outcome instanceof Error) p.reject(outcome);
    else p.resolve(outcome.value);
  }

  private onTimeout(id: string): void {
    const p = this.pendingCalls.get(id);
    if (!p) return;
    this.pendingCalls.delete(id); // a late reply is now stray
    p.cleanup?.();
    this.registry.isAlive(p.actorId).then(
      (alive) => {
        if (!alive) this.forgetRoute(p.actorId, true);
        p.reject(
          alive
            ? new ActorTimeoutError(p.actorId, p.method, p.timeoutMs)
            : new ActorDiedError(p.actorId, p.method, `no reply within ${p.timeoutMs} ms and its registry heartbeat expired`),
        );
      },
      (err: Error) => p.reject(new ActorTimeoutError(p.actorId, p.method, p.timeoutMs, `the registry could not be checked either (${err.message})`)),
    );
  }

  private onReply(data: Buffer, arrived: number): void {
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
    const p = this.pendingCalls.get(msg.id)!;
    const outcome = this.outcome(msg, p);
    this.settle(msg.id, outcome);
    if (p.trace && this.onTrace) {
      const t = p.trace;
      this.onTrace({
        actorId: p.actorId,
        method: p.method,
        transport: p.link ? 'link' : 'pubsub',
        ok: msg.ok,
        requestBytes: t.requestBytes,
        replyBytes: data.length,
        called: t.called,
        encoded: t.encoded,
        sent: t.sent,
        replied: arrived,
        settled: preciseNow(),
        server: msg.trace ?? null,
      });
    }
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
