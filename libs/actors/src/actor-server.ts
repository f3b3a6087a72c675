/**
 * The receiving side of actor calls: subscribes to the actor's inbox channel — and, with the `link`
 * option, also accepts direct links (direct-link.ts) — runs `call` messages on registered method
 * handlers and sends each `reply` back the way its call came: published on the caller's reply
 * channel, or written on the same link. The direct links may also be served from another thread
 * (`WorkerLinkServer`, e.g. the thread that computes): that thread answers the methods registered
 * there itself and relays every other message here (`relayLinks`).
 *
 * Ordering and concurrency:
 * - Messages are handled in arrival order. Redis delivers messages published on one connection in
 *   publish order, and a link is one ordered stream, so calls from one caller (one ActorClient,
 *   which uses one transport per actor at a time) are *started* in the order made.
 * - By default a method is concurrent: each call starts on arrival and async handlers overlap,
 *   so calls may *finish* out of order.
 * - `method(name, fn, { serial: true })` runs that method's calls one at a time, FIFO (start and
 *   finish in arrival order). `serial: 'compute'` puts methods in a shared serial lane (e.g. two
 *   methods that share one serial compute engine).
 *
 * Failure handling: a handler error becomes `reply{ok:false}` with the error's code/message/param;
 * an unknown method gets `unknown_method`; a call whose deadline passed before it started is not
 * run and gets `deadline_exceeded`; a malformed message is answered with `protocol_error` when its
 * reply address can be recovered, else counted in `stats.malformed` and dropped. Nothing a peer
 * sends can crash the server.
 */
import type { MessagePort } from 'node:worker_threads';
import type { Redis } from 'ioredis';
import { DEFAULT_INLINE_LIMIT_BYTES, isPayloadRef, publishMessage, resolveMessage } from './claim-check';
import {
  InvalidInputError,
  ProtocolError,
  RedisKeys,
  decode,
  toWireError,
  type CallMessage,
  type Message,
  type TellMessage,
  type WireError,
} from '@starq/protocol';
import { errorReply, preciseNow, runCall, SERVER_ERROR_CODES, stoppedError, type MethodHandler } from './call-runner';
import { RelayPort } from './link-relay';
import { duplicateRedis } from './redis';
import { LinkListener, type LinkPeer } from './link-listener';

/** How a message reached the server, and so where its reply goes. */
type Inbound = { via: 'pubsub' } | { via: 'link'; peer: LinkPeer };

/** A call being handled: the message, its route and its trace timestamps (set when it asked for a trace). */
interface Incoming {
  call: CallMessage;
  inbound: Inbound;
  received: number;
  decoded: number;
}

export interface MethodOptions {
  /**
   * Serial execution: `true` gives the method its own FIFO lane (one call at a time); a string
   * names a lane shared with other methods. `false` runs calls concurrently.
   * @defaultValue false
   */
  serial?: boolean | string;
}

export interface ActorServerOptions {
  /** The actor's id; the inbox is `keys.inbox(actorId)`. */
  actorId: string;
  /** Key layout. @defaultValue `new RedisKeys()` */
  keys?: RedisKeys;
  /**
   * Connection used for SUBSCRIBE (a subscribed connection cannot run other commands).
   * @defaultValue `duplicateRedis(redis)`, closed by stop()
   */
  subscriber?: Redis;
  /** Reports dropped messages and failed reply publishes. @defaultValue console.warn */
  onError?: (err: Error) => void;
  /** Replies larger than this travel as a claim check (claim-check.ts). @defaultValue 1 MiB */
  inlineLimitBytes?: number;
  /**
   * Also accept calls over direct links (direct-link.ts) on this address: `tcp://host:port`
   * (port 0 = any free port) or `unix:/path`. The bound address is {@link ActorServer.linkAddress};
   * advertise it in the registry record (`register({ link })`) so that clients use it.
   * @defaultValue none (pub/sub only)
   */
  link?: string;
}

export interface ActorServerStats {
  /** Messages received (inbox and direct links). */
  received: number;
  /** Of those, messages that came over a direct link. */
  receivedDirect: number;
  /** Replies published (ok or not). */
  replied: number;
  /** Calls whose handler threw. */
  failed: number;
  /** Calls not run because their deadline had passed. */
  expired: number;
  /** Undecodable / invalid messages. */
  malformed: number;
  /** Valid messages nobody handles (e.g. a stray reply, a `tell` topic with no `onMessage` handler). */
  dropped: number;
}

interface Lane {
  running: boolean;
  queue: Incoming[];
}

export class ActorServer {
  readonly actorId: string;
  readonly keys: RedisKeys;
  /** Inbox channel. */
  readonly address: string;
  readonly stats: ActorServerStats = { received: 0, receivedDirect: 0, replied: 0, failed: 0, expired: 0, malformed: 0, dropped: 0 };

  private readonly handlers = new Map<string, { fn: MethodHandler; lane: string | null }>();
  private readonly messageHandlers = new Map<string, (body: unknown, msg: TellMessage) => unknown>();
  private readonly lanes = new Map<string, Lane>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly subscriber: Redis;
  private readonly ownSubscriber: boolean;
  private readonly addressBuf: Buffer;
  private readonly replyPrefix: string;
  private readonly onError: (err: Error) => void;
  private state: 'new' | 'running' | 'stopped' = 'new';
  private readonly inlineLimit: number;
  private readonly linkRequest: string | null;
  private linkListener: LinkListener | null = null;
  private relay: RelayPort | null = null;
  /** Inbox messages in arrival order: a parked (large) message is fetched before later ones are handled. */
  private inbox: Promise<void> = Promise.resolve();
  private readonly listener = (channel: Buffer, data: Buffer) => {
    if (!channel.equals(this.addressBuf)) return;
    if (!isPayloadRef(data) && this.inboxIdle) {
      this.receive(data, PUBSUB); // fast path: nothing parked ahead of it
      return;
    }
    this.inboxIdle = false;
    const done = this.inbox.then(async () => {
      let buf: Buffer;
      try {
        buf = await resolveMessage(this.redis, data);
      } catch (err) {
        this.stats.received++;
        this.stats.malformed++;
        this.onError(new ProtocolError(`dropped message on ${this.address}: ${(err as Error).message}`));
        return;
      }
      this.receive(buf, PUBSUB);
    });
    this.inbox = done;
    void done.then(() => {
      if (this.inbox === done) this.inboxIdle = true;
    });
  };
  private inboxIdle = true;

  constructor(
    private readonly redis: Redis,
    opts: ActorServerOptions,
  ) {
    this.actorId = opts.actorId;
    this.keys = opts.keys ?? new RedisKeys();
    this.address = this.keys.inbox(opts.actorId);
    this.addressBuf = Buffer.from(this.address);
    this.inlineLimit = opts.inlineLimitBytes ?? DEFAULT_INLINE_LIMIT_BYTES;
    this.linkRequest = opts.link ?? null;
    this.replyPrefix = this.keys.replyChannel('x').slice(0, -1);
    this.ownSubscriber = !opts.subscriber;
    this.subscriber = opts.subscriber ?? duplicateRedis(redis);
    this.onError = opts.onError ?? ((err) => console.warn(`[starq] actor ${this.actorId}: ${err.message}`));
  }

  /** Registers a method handler. Its return value (any msgpack-able value) is the call's result. */
  method<A = any, R = unknown>(name: string, fn: MethodHandler<A, R>, opts: MethodOptions = {}): this {
    if (!name) throw new InvalidInputError('invalid_method', 'method name must be a non-empty string', 'method');
    if (this.handlers.has(name)) throw new InvalidInputError('duplicate_method', `method ${name} is already registered on actor ${this.actorId}`, 'method');
    const lane = opts.serial === true ? `method:${name}` : typeof opts.serial === 'string' && opts.serial ? `lane:${opts.serial}` : null;
    this.handlers.set(name, { fn: fn as MethodHandler, lane });
    return this;
  }

  /** Handles one-way messages (`tell`) of `topic` sent to the inbox, fire-and-forget. */
  onMessage<B = any>(topic: string, fn: (body: B, msg: TellMessage) => unknown): this {
    if (!topic) throw new InvalidInputError('invalid_topic', 'message topic must be a non-empty string', 'topic');
    this.messageHandlers.set(topic, fn as (body: unknown, msg: TellMessage) => unknown);
    return this;
  }

  /** Subscribes to the inbox (and opens the direct-link listener, if any); calls are served once this resolves. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new InvalidInputError('server_state', `actor server ${this.actorId} was already ${this.state === 'running' ? 'started' : 'stopped'}`, null);
    this.state = 'running';
    this.subscriber.on('messageBuffer', this.listener);
    try {
      await this.subscriber.subscribe(this.address);
      if (this.linkRequest) {
        this.linkListener = await LinkListener.listen(this.linkRequest, {
          actorId: this.actorId,
          onFrame: (buf, peer) => this.receive(buf, { via: 'link', peer }),
          onError: (err) => this.onError(new Error(`direct link: ${err.message}`)),
        });
      }
    } catch (err) {
      this.subscriber.off('messageBuffer', this.listener);
      await this.subscriber.unsubscribe(this.address).catch(() => undefined);
      this.state = 'new';
      throw err;
    }
  }

  /**
   * Serves the calls a {@link WorkerLinkServer} relays from its direct links (the methods it does
   * not answer in its own thread): they run on this server's handlers and their replies go back on
   * the link they came on. `stop()` stops the worker's links too.
   */
  relayLinks(port: MessagePort): this {
    if (this.relay) throw new InvalidInputError('server_state', `actor server ${this.actorId} already serves relayed links`, null);
    this.relay = new RelayPort(port, (buf, peer) => this.receive(buf, { via: 'link', peer }));
    return this;
  }

  /** The direct-link address callers can use (null: pub/sub only, or not started). */
  get linkAddress(): string | null {
    return this.linkListener?.address ?? null;
  }

  /**
   * Stops receiving, answers queued (not yet started) calls — and calls arriving on open direct
   * links meanwhile — with `actor_stopped`, waits up to `drainMs` for running handlers to finish
   * and reply, then closes the direct links.
   * @param opts.drainMs - @defaultValue 5000
   */
  async stop(opts: { drainMs?: number } = {}): Promise<void> {
    if (this.state !== 'running') {
      this.state = 'stopped';
      await this.relay?.close(0);
      return;
    }
    this.state = 'stopped';
    this.subscriber.off('messageBuffer', this.listener);
    const closing = this.linkListener?.close();
    this.relay?.stopping();
    try {
      if (this.ownSubscriber) await this.subscriber.quit();
      else await this.subscriber.unsubscribe(this.address);
    } catch {
      this.subscriber.disconnect();
    }
    for (const lane of this.lanes.values()) {
      for (const inc of lane.queue.splice(0)) this.track(this.replyStopped(inc));
    }
    const drainMs = opts.drainMs ?? 5000;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.inFlight]),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, drainMs);
      }),
    ]);
    clearTimeout(timer);
    this.linkListener?.destroyConnections();
    await Promise.all([closing, this.relay?.close(drainMs)]);
  }

  /** Replies only go to reply channels of this key prefix (a call cannot make us publish elsewhere). */
  private isReplyChannel(channel: string): boolean {
    return channel.startsWith(this.replyPrefix) && channel.length > this.replyPrefix.length;
  }

  private track(p: Promise<void>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  private receive(data: Buffer, inbound: Inbound): void {
    const received = preciseNow();
    this.stats.received++;
    if (inbound.via === 'link') this.stats.receivedDirect++;
    let msg: Message;
    try {
      msg = decode(data);
    } catch (err) {
      this.stats.malformed++;
      const pe = err instanceof ProtocolError ? err : new ProtocolError(String(err));
      if (pe.replyTo && this.isReplyChannel(pe.replyTo.from)) {
        const call = { id: pe.replyTo.id, from: pe.replyTo.from } as CallMessage;
        this.track(this.replyError({ call, inbound, received, decoded: received }, toWireError(pe)));
      } else {
        this.onError(new ProtocolError(`dropped malformed message on ${this.address}: ${pe.message}`));
      }
      return;
    }
    if (msg.kind === 'call') {
      const inc: Incoming = { call: msg, inbound, received, decoded: preciseNow() };
      if (!this.isReplyChannel(msg.from)) {
        this.stats.malformed++;
        this.onError(new ProtocolError(`dropped call ${msg.method} on ${this.address}: reply channel ${msg.from} is not under ${this.replyPrefix}`));
      } else if (this.state !== 'running') {
        this.track(this.replyStopped(inc)); // a direct link still open while stopping
      } else {
        this.dispatch(inc);
      }
      return;
    }
    if (msg.kind !== 'tell') {
      this.stats.dropped++;
      this.onError(new Error(`dropped ${msg.kind} message on ${this.address}: an inbox takes calls and tells`));
      return;
    }
    const tell = msg;
    const fn = this.messageHandlers.get(tell.topic);
    if (!fn) {
      this.stats.dropped++;
      this.onError(new Error(`dropped ${tell.topic} message on ${this.address}: no onMessage('${tell.topic}') handler`));
      return;
    }
    this.track(
      (async () => {
        try {
          await fn(tell.body, tell);
        } catch (err) {
          this.onError(new Error(`onMessage('${tell.topic}') handler failed: ${(err as Error)?.message ?? String(err)}`));
        }
      })(),
    );
  }

  private dispatch(inc: Incoming): void {
    const call = inc.call;
    const h = this.handlers.get(call.method);
    if (!h) {
      const known = [...this.handlers.keys()].join(', ') || '(none)';
      this.track(
        this.replyError(inc, {
          code: SERVER_ERROR_CODES.unknownMethod,
          message: `actor ${this.actorId} has no method ${call.method}; its methods: ${known}`,
          param: 'method',
          name: 'UnknownMethodError',
          status: 404,
        }),
      );
      return;
    }
    if (!h.lane) {
      this.track(this.run(inc, h.fn));
      return;
    }
    let lane = this.lanes.get(h.lane);
    if (!lane) this.lanes.set(h.lane, (lane = { running: false, queue: [] }));
    lane.queue.push(inc);
    if (!lane.running) this.track(this.drainLane(lane));
  }

  private async drainLane(lane: Lane): Promise<void> {
    lane.running = true;
    try {
      for (let inc = lane.queue.shift(); inc; inc = lane.queue.shift()) {
        await this.run(inc, this.handlers.get(inc.call.method)!.fn);
      }
    } finally {
      lane.running = false;
    }
  }

  private async run(inc: Incoming, fn: MethodHandler): Promise<void> {
    const { outcome, reply, problem } = await runCall(inc, this.actorId, fn);
    if (outcome === 'expired') this.stats.expired++;
    else if (outcome === 'failed') this.stats.failed++;
    if (reply) await this.publish(inc, reply);
    else this.onError(new Error(problem));
  }

  private replyStopped(inc: Incoming): Promise<void> {
    return this.replyError(inc, stoppedError(this.actorId));
  }

  private async replyError(inc: Incoming, error: WireError): Promise<void> {
    const { reply, problem } = errorReply(inc, error);
    if (reply) await this.publish(inc, reply);
    else this.onError(new Error(problem));
  }

  /** Sends a reply back the way its call came: on the same direct link, or published on the caller's reply channel. */
  private async publish(inc: Incoming, buf: Buffer): Promise<void> {
    const call = inc.call;
    if (inc.inbound.via === 'link') {
      if (inc.inbound.peer.send(buf)) this.stats.replied++;
      else this.onError(new Error(`reply to ${call.from} (call ${call.id}${call.method ? ` ${call.method}` : ''}) not sent: its direct link closed`));
      return;
    }
    try {
      // The parked copy of a large reply lives until the caller's deadline (at least 60 s).
      await publishMessage(this.redis, this.keys, call.from, buf, { inlineLimit: this.inlineLimit, ttlMs: 60000 });
      this.stats.replied++;
    } catch (err) {
      this.onError(new Error(`reply to ${call.from} (call ${call.id}${call.method ? ` ${call.method}` : ''}) not sent: ${(err as Error).message}`));
    }
  }
}

const PUBSUB: Inbound = { via: 'pubsub' };
