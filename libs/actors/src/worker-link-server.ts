/**
 * Direct links (direct-link.ts) served from a worker thread — typically the thread that computes —
 * so that a call handled there never wakes the main thread: socket → worker → socket. The actor's
 * main thread keeps its `ActorServer` (pub/sub inbox, control plane): every frame this server does
 * not answer itself (other methods, `tell`s, malformed messages) is relayed to it
 * (`ActorServer.relayLinks`, link-relay.ts), which handles it as a call that came over a link, and
 * its reply is written back on the same connection.
 *
 * Same semantics as a link served by the `ActorServer`: handshake, frames, deadline check, error
 * replies and traces (call-runner.ts); methods registered here are concurrent (each call starts on
 * arrival). Calls run here may start before earlier calls on the same link that were relayed to
 * the main thread. Stopping is driven by the main thread's `ActorServer.stop()`: calls arriving
 * after it began are answered with `actor_stopped`, calls in flight finish (within its `drainMs`),
 * then the links are closed. If this thread dies its sockets close with it, and callers see
 * `ActorDiedError` as for a dead process.
 */
import type { MessagePort } from 'node:worker_threads';
import { decode, InvalidInputError, type Message } from '@starq/protocol';
import { errorReply, preciseNow, runCall, stoppedError, type MethodHandler, type ReceivedCall } from './call-runner';
import { postFrame, type RelayToWorker } from './link-relay';
import { LinkListener, type LinkPeer } from './link-listener';

export interface WorkerLinkServerOptions {
  /** The actor's id (links naming another actor are refused). */
  actorId: string;
  /** Where to listen: `tcp://host:port` (port 0 = any free port) or `unix:/path`. */
  address: string;
  /** This thread's end of the relay channel; the other end goes to `ActorServer.relayLinks`. */
  relay: MessagePort;
  /** Connection problems and replies that could not be sent. @defaultValue console.warn */
  onError?: (err: Error) => void;
}

export interface WorkerLinkServerStats {
  /** Frames received. */
  received: number;
  /** Of those, calls handled in this thread. */
  handled: number;
  /** Frames relayed to the main thread. */
  relayed: number;
  /** Calls handled here whose handler threw (or whose result could not be encoded). */
  failed: number;
  /** Calls not run because their deadline had passed. */
  expired: number;
}

export class WorkerLinkServer {
  readonly stats: WorkerLinkServerStats = { received: 0, handled: 0, relayed: 0, failed: 0, expired: 0 };
  private readonly handlers = new Map<string, MethodHandler>();
  private readonly peers = new Map<number, LinkPeer>();
  private readonly peerIds = new WeakMap<LinkPeer, number>();
  private nextPeer = 1;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly onError: (err: Error) => void;
  private listener: LinkListener | null = null;
  private state: 'new' | 'running' | 'stopping' = 'new';

  constructor(private readonly opts: WorkerLinkServerOptions) {
    this.onError = opts.onError ?? ((err) => console.warn(`[starq] actor ${opts.actorId} (link thread): ${err.message}`));
  }

  /** Answers `name` in this thread; calls of other methods go to the main thread. */
  method<A = any, R = unknown>(name: string, fn: MethodHandler<A, R>): this {
    if (!name) throw new InvalidInputError('invalid_method', 'method name must be a non-empty string', 'method');
    if (this.handlers.has(name)) throw new InvalidInputError('duplicate_method', `method ${name} is already registered on actor ${this.opts.actorId}'s link thread`, 'method');
    this.handlers.set(name, fn as MethodHandler);
    return this;
  }

  /** Listens; resolves with the bound address (advertise it in the actor's registry record). */
  async start(): Promise<string> {
    if (this.state !== 'new') throw new InvalidInputError('server_state', `link server of actor ${this.opts.actorId} was already started`, null);
    this.opts.relay.on('message', (m: RelayToWorker) => this.fromMain(m));
    this.listener = await LinkListener.listen(this.opts.address, {
      actorId: this.opts.actorId,
      onFrame: (buf, peer) => this.receive(buf, peer),
      onError: (err) => this.onError(new Error(`direct link: ${err.message}`)),
      onPeerClose: (peer) => {
        const id = this.peerIds.get(peer);
        if (id === undefined) return;
        this.peers.delete(id);
        this.opts.relay.postMessage({ op: 'peerClosed', peer: id });
      },
    });
    this.state = 'running';
    return this.listener.address;
  }

  /** The bound address (null before `start`). */
  get address(): string | null {
    return this.listener?.address ?? null;
  }

  private receive(buf: Buffer, peer: LinkPeer): void {
    const received = preciseNow();
    this.stats.received++;
    let msg: Message | null = null;
    try {
      msg = decode(buf);
    } catch {
      // the main thread's server answers (or drops) a malformed message
    }
    const fn = msg?.kind === 'call' ? this.handlers.get(msg.method) : undefined;
    if (!msg || msg.kind !== 'call' || !fn) {
      this.relayFrame(buf, peer);
      return;
    }
    const inc: ReceivedCall = { call: msg, received, decoded: preciseNow() };
    this.stats.handled++;
    const p = (async () => {
      let reply: Buffer | null;
      let problem: string | undefined;
      if (this.state !== 'running') ({ reply, problem } = errorReply(inc, stoppedError(this.opts.actorId)));
      else {
        const r = await runCall(inc, this.opts.actorId, fn);
        if (r.outcome === 'expired') this.stats.expired++;
        else if (r.outcome === 'failed') this.stats.failed++;
        ({ reply, problem } = r);
      }
      if (!reply) this.onError(new Error(problem));
      else if (!peer.send(reply)) this.onError(new Error(`reply to ${inc.call.from} (call ${inc.call.id} ${inc.call.method}) not sent: its direct link closed`));
    })();
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  private relayFrame(buf: Buffer, peer: LinkPeer): void {
    let id = this.peerIds.get(peer);
    if (id === undefined) {
      id = this.nextPeer++;
      this.peerIds.set(peer, id);
      this.peers.set(id, peer);
    }
    this.stats.relayed++;
    postFrame(this.opts.relay, id, buf);
  }

  private fromMain(m: RelayToWorker): void {
    if (m.op === 'frame') {
      const peer = this.peers.get(m.peer);
      if (!peer || !peer.send(m.frame)) this.onError(new Error('a relayed reply was not sent: its direct link closed'));
    } else if (m.op === 'stopping') {
      this.state = 'stopping';
      void this.listener?.close();
    } else if (m.op === 'close') {
      this.state = 'stopping';
      void this.close(m.drainMs);
    }
  }

  private async close(drainMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.inFlight]), new Promise<void>((resolve) => (timer = setTimeout(resolve, drainMs)))]);
    clearTimeout(timer);
    await this.listener?.close({ destroy: true });
    this.opts.relay.postMessage({ op: 'closed' });
    this.opts.relay.close();
  }
}
