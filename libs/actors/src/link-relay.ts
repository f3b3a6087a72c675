/**
 * The channel between a {@link WorkerLinkServer} (worker thread: owns the direct-link sockets) and
 * the `ActorServer` of the same actor (main thread). Frames the worker does not answer itself are
 * relayed to the main thread with the id of the connection they came on; the main thread's replies
 * go back with that id and the worker writes them on that connection. Frames are copied into
 * their own buffers and transferred, never shared.
 */
import type { MessagePort } from 'node:worker_threads';
import type { LinkPeer } from './link-listener';

/** Worker → main. */
export type RelayToMain = { op: 'frame'; peer: number; frame: Uint8Array } | { op: 'peerClosed'; peer: number } | { op: 'closed' };
/** Main → worker: a reply frame; `stopping` (answer new calls with `actor_stopped`, accept no new links); `close` (finish calls in flight within `drainMs`, close the links, answer `closed`). */
export type RelayToWorker = { op: 'frame'; peer: number; frame: Uint8Array } | { op: 'stopping' } | { op: 'close'; drainMs: number };

/** Posts `frame` (copied, the copy transferred) on `port`. */
export function postFrame(port: MessagePort, peer: number, frame: Uint8Array): void {
  const copy = new Uint8Array(frame);
  port.postMessage({ op: 'frame', peer, frame: copy }, [copy.buffer]);
}

/** The main thread's end: relayed frames in, replies out, and the stop handshake. */
export class RelayPort {
  private readonly peers = new Map<number, LinkPeer>();
  private closedWaiters: (() => void)[] = [];
  private gone = false;

  constructor(
    private readonly port: MessagePort,
    onFrame: (buf: Buffer, peer: LinkPeer) => void,
  ) {
    port.on('message', (m: RelayToMain) => {
      if (m.op === 'frame') onFrame(Buffer.from(m.frame.buffer, m.frame.byteOffset, m.frame.byteLength), this.peer(m.peer));
      else if (m.op === 'peerClosed') this.peers.delete(m.peer);
      else if (m.op === 'closed') this.wake();
    });
    port.on('close', () => {
      this.gone = true;
      this.wake();
    });
  }

  /** Tells the worker to refuse new calls and links. */
  stopping(): void {
    if (!this.gone) this.port.postMessage({ op: 'stopping' } satisfies RelayToWorker);
  }

  /** Has the worker finish its calls in flight (up to `drainMs`) and close its links; resolves when it did (or its thread is gone, or `drainMs` + 1 s passed). */
  async close(drainMs: number): Promise<void> {
    if (!this.gone) {
      const done = new Promise<void>((resolve) => this.closedWaiters.push(resolve));
      this.port.postMessage({ op: 'close', drainMs } satisfies RelayToWorker);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([done, new Promise<void>((resolve) => (timer = setTimeout(resolve, drainMs + 1000)))]);
      clearTimeout(timer);
    }
    this.port.close();
  }

  private peer(id: number): LinkPeer {
    let p = this.peers.get(id);
    if (!p) {
      p = {
        send: (buf) => {
          if (this.gone) return false;
          postFrame(this.port, id, buf);
          return true;
        },
        get open() {
          return true;
        },
      };
      this.peers.set(id, p);
    }
    return p;
  }

  private wake(): void {
    const w = this.closedWaiters;
    this.closedWaiters = [];
    for (const f of w) f();
  }
}
