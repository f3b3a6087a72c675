/**
 * A host actor seen from another process: the `Host` contract (libs/attention host.ts) over actor
 * calls. The host side is `HostActor` (apps/host-actor), which serves these method names.
 */
import type { AttendBatch, AttendRequest, BlockHandle, EncodeBlockRequest, Host, KvBlock, Partial } from '@starq/attention';
import type { ActorHandle } from '@starq/actors';

export const HOST_METHODS = {
  encodeBlock: 'encodeBlock',
  attend: 'attend',
  attendMany: 'attendMany',
  ringStart: 'ringStart',
  ringQkv: 'ringQkv',
  ringAttend: 'ringAttend',
  ringPost: 'ringPost',
  ringEnd: 'ringEnd',
  release: 'release',
  stats: 'stats',
  /** Start the host's drain (the same procedure as SIGTERM): it stops taking blocks, hands its blocks over, exits. */
  drain: 'drain',
} as const;

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

  encodeBlock(req: EncodeBlockRequest): Promise<BlockHandle> {
    return this.handle.call<BlockHandle>(HOST_METHODS.encodeBlock, req, { timeoutMs: this.t.encodeMs });
  }
  attend(req: AttendRequest): Promise<Partial> {
    return this.handle.call<Partial>(HOST_METHODS.attend, req, { timeoutMs: this.t.attendMs });
  }
  /** One actor call for every item (a plain message of typed arrays: `{ items }`). */
  attendMany(items: AttendBatch): Promise<Partial[]> {
    return this.handle.call<Partial[]>(HOST_METHODS.attendMany, { items }, { timeoutMs: this.t.attendMs });
  }
  ringStart(cacheId: string, ids: Int32Array, positions: Int32Array): Promise<void> {
    return this.handle.call<void>(HOST_METHODS.ringStart, { cacheId, ids, positions }, { timeoutMs: this.t.ringMs });
  }
  ringQkv(cacheId: string, layer: number): Promise<KvBlock> {
    return this.handle.call<KvBlock>(HOST_METHODS.ringQkv, { cacheId, layer }, { timeoutMs: this.t.ringMs });
  }
  ringAttend(cacheId: string, layer: number, kv: KvBlock): Promise<void> {
    return this.handle.call<void>(HOST_METHODS.ringAttend, { cacheId, layer, kv }, { timeoutMs: this.t.ringMs });
  }
  ringPost(cacheId: string, layer: number): Promise<void> {
    return this.handle.call<void>(HOST_METHODS.ringPost, { cacheId, layer }, { timeoutMs: this.t.ringMs });
  }
  ringEnd(cacheId: string): Promise<void> {
    return this.handle.call<void>(HOST_METHODS.ringEnd, { cacheId }, { timeoutMs: this.t.controlMs });
  }
  release(cacheIds: string[]): Promise<void> {
    return this.handle.call<void>(HOST_METHODS.release, { cacheIds }, { timeoutMs: this.t.controlMs });
  }
}
