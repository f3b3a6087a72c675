/**
 * A host actor seen from another process: the `Host` contract (libs/attention host.ts) over actor
 * calls. The host side is `HostActor` (apps/host-actor), which serves these methods with
 * `serveHost`; every result is checked against the host wire (host-calls.ts) before it is used.
 */
import type { AttendBatch, AttendRequest, BlockHandle, EncodeBlockRequest, Host, KvBlock, Partial } from '@starq/attention';
import type { ActorHandle } from '@starq/actors';
import { HOST_CALLS, HOST_METHODS, type HostArgs, type HostMethod, type HostResult } from './host-calls';

export interface RemoteHostTimeouts {
  /** Per-layer attend call. @defaultValue 15000 */
  attendMs: number;
  /** Encoding one block. @defaultValue 600000 */
  encodeMs: number;
  /** Each ring step. @defaultValue 120000 */
  ringMs: number;
  /** Control calls (release, stats). @defaultValue 10000 */
  controlMs: number;
}

export const DEFAULT_REMOTE_HOST_TIMEOUTS: RemoteHostTimeouts = { attendMs: 15000, encodeMs: 600000, ringMs: 120000, controlMs: 10000 };

export class RemoteHost implements Host {
  private readonly t: RemoteHostTimeouts;

  constructor(readonly id: string, private readonly handle: ActorHandle, timeouts: { [K in keyof RemoteHostTimeouts]?: RemoteHostTimeouts[K] } = {}) {
    this.t = { ...DEFAULT_REMOTE_HOST_TIMEOUTS, ...timeouts };
  }

  /** Calls `method` and validates its result. */
  private async call<M extends HostMethod>(method: M, args: HostArgs<M>, timeoutMs: number): Promise<HostResult<M>> {
    return HOST_CALLS[method].result(await this.handle.call(HOST_METHODS[method], args, { timeoutMs }));
  }

  encodeBlock(req: EncodeBlockRequest): Promise<BlockHandle> {
    return this.call('encodeBlock', req, this.t.encodeMs);
  }
  attend(req: AttendRequest): Promise<Partial> {
    return this.call('attend', req, this.t.attendMs);
  }
  /** One actor call for every item (a plain message of typed arrays: `{ items }`). */
  attendMany(items: AttendBatch): Promise<Partial[]> {
    return this.call('attendMany', { items }, this.t.attendMs);
  }
  ringStart(cacheId: string, ids: Int32Array, positions: Int32Array): Promise<void> {
    return this.call('ringStart', { cacheId, ids, positions }, this.t.ringMs);
  }
  ringQkv(cacheId: string, layer: number): Promise<KvBlock> {
    return this.call('ringQkv', { cacheId, layer }, this.t.ringMs);
  }
  ringAttend(cacheId: string, layer: number, kv: KvBlock): Promise<void> {
    return this.call('ringAttend', { cacheId, layer, kv }, this.t.ringMs);
  }
  ringPost(cacheId: string, layer: number): Promise<void> {
    return this.call('ringPost', { cacheId, layer }, this.t.ringMs);
  }
  ringEnd(cacheId: string): Promise<void> {
    return this.call('ringEnd', { cacheId }, this.t.controlMs);
  }
  release(cacheIds: string[]): Promise<void> {
    return this.call('release', { cacheIds }, this.t.controlMs);
  }
}
