/**
 * Direct links: the actor-call transport that skips Redis. An actor server may listen on a TCP or
 * Unix-socket address and advertise it in its registry record (`ActorRecord.link`); a client that
 * finds the address opens one connection to that actor and sends its calls over it, and the
 * replies come back on the same connection. The frames are the same msgpack messages as on pub/sub
 * (`encode(message('call', …))`), each preceded by its length (4 bytes, big-endian); links never
 * carry claim checks (a large message is just a long frame).
 *
 * Connection set-up: the client's first frame is the UTF-8 text `starq-link/1 <actorId>`; the
 * server answers `ok`, or `refused <reason>` and closes (a wrong actor id: e.g. the advertised port
 * now belongs to another process). After that both sides only exchange message frames.
 *
 * Redis pub/sub stays the control plane and the fallback: registry, heartbeats, `send()`
 * messages, and every call to an actor that advertises no link (or one this client cannot
 * reach) go through Redis. A link that closes while calls are in flight fails them with
 * ActorDiedError (see ActorClient).
 */
import net from 'node:net';
import { parseLinkAddress } from './link-address';
import { FrameReader, LINK_PROTOCOL, writeFrame } from './link-frames';

/** The link could not be opened (unreachable, refused, no handshake answer in time). */
export class LinkConnectError extends Error {
  constructor(readonly address: string, readonly actorId: string, reason: string) {
    super(`direct link to actor ${actorId} at ${address} failed: ${reason}`);
    this.name = 'LinkConnectError';
  }
}

export interface DirectLinkOptions {
  /** Time allowed for connect + handshake. @defaultValue 2000 */
  connectTimeoutMs?: number;
  /** Called for every frame the actor sends (replies), in order. */
  onFrame: (buf: Buffer) => void;
  /** Called once when the link closes for any reason after it was open (`reason` says why). */
  onClose: (reason: string) => void;
}

/** The client side: one open connection to one actor. */
export class DirectLink {
  private closedReason: string | null = null;

  private constructor(
    readonly actorId: string,
    readonly address: string,
    private readonly socket: net.Socket,
  ) {}

  /**
   * Connects and completes the handshake.
   * @throws LinkConnectError
   */
  static connect(address: string, actorId: string, opts: DirectLinkOptions): Promise<DirectLink> {
    const a = parseLinkAddress(address);
    const timeoutMs = opts.connectTimeoutMs ?? 2000;
    return new Promise<DirectLink>((resolve, reject) => {
      const socket = a.kind === 'unix' ? net.connect(a.path) : net.connect({ host: a.host, port: a.port, noDelay: true });
      socket.setNoDelay(true);
      const reader = new FrameReader();
      let link: DirectLink | null = null;
      const fail = (reason: string) => {
        clearTimeout(timer);
        socket.destroy();
        reject(new LinkConnectError(address, actorId, reason));
      };
      const timer = setTimeout(() => fail(`no handshake answer within ${timeoutMs} ms`), timeoutMs);
      socket.once('connect', () => writeFrame(socket, Buffer.from(`${LINK_PROTOCOL} ${actorId}`)));
      socket.on('data', (chunk: Buffer) => {
        let frames: Buffer[];
        try {
          frames = reader.push(chunk);
        } catch (err) {
          if (link) link.closeWith((err as Error).message);
          else fail((err as Error).message);
          return;
        }
        for (const f of frames) {
          if (link) {
            opts.onFrame(f);
            continue;
          }
          const answer = f.toString('utf8');
          if (answer !== 'ok') return fail(answer.startsWith('refused ') ? `refused: ${answer.slice('refused '.length)}` : 'not a starq link endpoint');
          clearTimeout(timer);
          link = new DirectLink(actorId, address, socket);
          resolve(link);
        }
      });
      socket.on('error', (err: NodeJS.ErrnoException) => {
        if (!link) fail(err.code ?? err.message);
        else link.closedReason ??= `socket error ${err.code ?? err.message}`;
      });
      socket.on('close', () => {
        if (!link) return fail('connection closed during the handshake');
        const reason = link.closedReason ?? 'the actor closed the connection';
        link.closedReason = reason;
        opts.onClose(reason);
      });
    });
  }

  get open(): boolean {
    return this.closedReason === null && !this.socket.destroyed;
  }

  /** Sends one frame; false when the link is closed (the caller fails the call). */
  send(buf: Uint8Array): boolean {
    if (!this.open) return false;
    writeFrame(this.socket, buf);
    return true;
  }

  /** Closes the link; `onClose` runs with `reason`. */
  closeWith(reason: string): void {
    this.closedReason ??= reason;
    this.socket.destroy();
  }
}
