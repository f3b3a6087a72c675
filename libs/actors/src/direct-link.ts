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
import { InvalidInputError } from '@starq/protocol';

/** Version tag of the link handshake. */
export const LINK_PROTOCOL = 'starq-link/1';

/** Frames longer than this are refused (the connection is closed). @defaultValue 1 GiB */
export const MAX_LINK_FRAME_BYTES = 1 << 30;

/** A link address: `tcp://host:port` or `unix:/path/to.sock`. */
export type LinkAddress = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/**
 * Parses `tcp://host:port` (port 0 = any free port, for listening) or `unix:/absolute/path`.
 * @throws InvalidInputError (`invalid_link_address`, param `link`)
 */
export function parseLinkAddress(s: string): LinkAddress {
  const bad = (why: string): never => {
    throw new InvalidInputError('invalid_link_address', `invalid link address ${JSON.stringify(s)}: ${why}; expected tcp://host:port or unix:/absolute/path`, 'link');
  };
  if (typeof s !== 'string' || !s) return bad('empty');
  if (s.startsWith('unix:')) {
    const p = s.slice('unix:'.length);
    if (!p.startsWith('/')) bad('the socket path must be absolute');
    return { kind: 'unix', path: p };
  }
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d+)$/.exec(s);
  if (!m) return bad('not tcp://host:port');
  const port = Number(m[2]);
  if (!(port >= 0 && port <= 65535)) bad(`port ${m[2]} is out of range`);
  return { kind: 'tcp', host: m[1].replace(/^\[|\]$/g, ''), port };
}

export function formatLinkAddress(a: LinkAddress): string {
  return a.kind === 'unix' ? `unix:${a.path}` : `tcp://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

/** True when only processes on the same machine can reach the address (Unix socket, loopback). */
export function isMachineLocal(a: LinkAddress): boolean {
  return a.kind === 'unix' || a.host === 'localhost' || a.host === '::1' || a.host.startsWith('127.');
}

/** Splits a byte stream into length-prefixed frames. */
export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxFrameBytes = MAX_LINK_FRAME_BYTES) {}

  /**
   * Adds `chunk`; returns the frames it completed, in order.
   * @throws LinkFrameError when a frame announces more than `maxFrameBytes`.
   */
  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: Buffer[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const head = this.chunks[0].length >= 4 ? this.chunks[0] : this.flatten();
      const len = head.readUInt32BE(0);
      if (len > this.maxFrameBytes) throw new LinkFrameError(len, this.maxFrameBytes);
      if (this.buffered < 4 + len) break;
      const all = this.chunks.length === 1 ? this.chunks[0] : this.flatten();
      out.push(all.subarray(4, 4 + len));
      const rest = all.subarray(4 + len);
      this.chunks = rest.length > 0 ? [rest] : [];
      this.buffered = rest.length;
    }
    return out;
  }

  private flatten(): Buffer {
    const b = Buffer.concat(this.chunks, this.buffered);
    this.chunks = [b];
    return b;
  }
}

export class LinkFrameError extends Error {
  constructor(len: number, max: number) {
    super(`link frame of ${len} bytes exceeds the limit of ${max} bytes`);
    this.name = 'LinkFrameError';
  }
}

/** Writes one frame (length + bytes) in a single vectored write. */
export function writeFrame(socket: net.Socket, buf: Uint8Array): void {
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32BE(buf.length, 0);
  socket.cork();
  socket.write(head);
  socket.write(buf);
  socket.uncork();
}

/** One accepted connection, as the server sees it. */
export interface LinkPeer {
  /** Sends one frame; false when the connection is already closed (the frame is dropped). */
  send(buf: Uint8Array): boolean;
  readonly open: boolean;
}

export interface LinkListenerOptions {
  /** Only connections that name this actor are accepted. */
  actorId: string;
  /** Called for every message frame, in arrival order per connection. */
  onFrame: (buf: Buffer, peer: LinkPeer) => void;
  /** Connection-level problems (bad handshake, oversized frame, socket errors). */
  onError: (err: Error) => void;
}

/** The server side: accepts links for one actor. */
export class LinkListener {
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    /** The bound address (a `tcp://…:0` request resolved to the real port). */
    readonly address: string,
  ) {}

  /** Listens on `address` (see {@link parseLinkAddress}). A stale Unix socket file (no listener) is replaced. */
  static async listen(address: string, opts: LinkListenerOptions): Promise<LinkListener> {
    const a = parseLinkAddress(address);
    let listener: LinkListener | null = null;
    const server = net.createServer({ noDelay: true }, (socket) => listener!.accept(socket, opts));
    const bind = () =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        const done = () => {
          server.off('error', reject);
          resolve();
        };
        if (a.kind === 'unix') server.listen(a.path, done);
        else server.listen(a.port, a.host, done);
      });
    try {
      await bind();
    } catch (err) {
      if (a.kind !== 'unix' || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || (await socketAnswers(a.path))) throw err;
      const fs = await import('node:fs');
      fs.rmSync(a.path, { force: true });
      await bind();
    }
    server.on('error', (err) => opts.onError(err));
    const bound = server.address();
    const actual = a.kind === 'tcp' && bound && typeof bound === 'object' ? formatLinkAddress({ kind: 'tcp', host: a.host, port: bound.port }) : address;
    listener = new LinkListener(server, actual);
    return listener;
  }

  /** Connections open now. */
  get connections(): number {
    return this.sockets.size;
  }

  /** Stops accepting links; with `destroy`, also closes the open ones. */
  async close(opts: { destroy?: boolean } = {}): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (opts.destroy) for (const s of this.sockets) s.destroy();
    if (opts.destroy || this.sockets.size === 0) await closed;
  }

  /** Closes the open links (in-flight calls on them are lost to their callers). */
  destroyConnections(): void {
    for (const s of this.sockets) s.destroy();
  }

  private accept(socket: net.Socket, opts: LinkListenerOptions): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    const reader = new FrameReader();
    let greeted = false;
    const peer: LinkPeer = {
      send: (buf) => {
        if (socket.destroyed || !socket.writable) return false;
        writeFrame(socket, buf);
        return true;
      },
      get open() {
        return !socket.destroyed && socket.writable;
      },
    };
    socket.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = reader.push(chunk);
      } catch (err) {
        opts.onError(err as Error);
        socket.destroy();
        return;
      }
      for (const f of frames) {
        if (!greeted) {
          const hello = f.toString('utf8');
          const want = `${LINK_PROTOCOL} ${opts.actorId}`;
          if (hello !== want) {
            const reason = hello.startsWith(`${LINK_PROTOCOL} `) ? `this is actor ${opts.actorId}, not ${hello.slice(LINK_PROTOCOL.length + 1)}` : `expected the handshake ${LINK_PROTOCOL} <actorId>`;
            writeFrame(socket, Buffer.from(`refused ${reason}`));
            socket.end();
            return;
          }
          greeted = true;
          writeFrame(socket, Buffer.from('ok'));
          continue;
        }
        opts.onFrame(f, peer);
      }
    });
    socket.on('error', (err) => {
      if ((err as NodeJS.ErrnoException).code !== 'ECONNRESET' && (err as NodeJS.ErrnoException).code !== 'EPIPE') opts.onError(err);
    });
    socket.on('close', () => this.sockets.delete(socket));
  }
}

function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

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
