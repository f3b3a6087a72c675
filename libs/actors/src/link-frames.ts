/**
 * The byte format of a direct link (direct-link.ts): frames of `length (4 bytes, big-endian) ++
 * bytes`; the first frame each way is the handshake (`starq-link/1 <actorId>` / `ok`).
 */
import type net from 'node:net';

/** Version tag of the link handshake. */
export const LINK_PROTOCOL = 'starq-link/1';

/** Frames longer than this are refused (the connection is closed). @defaultValue 1 GiB */
export const MAX_LINK_FRAME_BYTES = 1 << 30;

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
