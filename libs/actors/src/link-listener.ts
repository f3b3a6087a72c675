/** The server side of direct links (direct-link.ts): accepts links for one actor. */
import net from 'node:net';
import { formatLinkAddress, parseLinkAddress } from './link-address';
import { FrameReader, LINK_PROTOCOL, writeFrame } from './link-frames';

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
  /** Called once when an accepted connection closes (after its last `onFrame`). */
  onPeerClose?: (peer: LinkPeer) => void;
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
    socket.on('close', () => {
      this.sockets.delete(socket);
      opts.onPeerClose?.(peer);
    });
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
