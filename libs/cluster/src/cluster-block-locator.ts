/**
 * Lost-host recovery on a cluster: the serving loop's `BlockLocator` over the KV directory (where
 * every block is) and the registry (which hosts are alive). A block whose handle is missing or
 * names a host that is not alive (or is in the request's lost set) is re-encoded by lineage on the
 * live host holding the least KV (not draining, when there is such a host), and its handle
 * rewritten. A `cache: false` request (`ctx.privateKey`) prefers its private copy of a block, then
 * the shared one, and re-encodes under its private id: it never writes a shared block's handle. A host that fails while re-encoding is reported as a `HostCallError` naming it.
 */
import { HostCallError, phase1Positions, phase1Tokens, type ContextPlacement, type Host } from '@starq/attention';
import { ActorDiedError, ActorTimeoutError, SERVER_ERROR_CODES } from '@starq/actors';
import { encodeCacheId, heldCacheIds, type BlockLocator, type EncodedContext, type HostFailureKind, type Relocation } from '@starq/model/serving/block-locator';
import { StarqError, type KvHandle } from '@starq/protocol';
import { isKvNotFound } from './errors';
import type { KvDirectory } from './kv-directory';
import type { ClusterRegistry } from './registry';

/** A context as the cluster knows it: the KV directory records the model and the context's hash. */
export interface ClusterContext extends EncodedContext {
  model: string;
  contextHash: string;
}

export interface ClusterBlockLocatorOptions {
  directory: KvDirectory;
  registry: ClusterRegistry;
  /** The `Host` for a host actor id (a RemoteHost). */
  host: (hostId: string) => Host;
  numLayers: number;
}

export class ClusterBlockLocator implements BlockLocator<ClusterContext> {
  /**
   * Per request (its `lost` set): the registry incarnation each lost host had when it was first
   * seen lost (null: no live record then). Only that incarnation is treated as dead: a replacement
   * that registers under the same id (a StatefulSet pod keeps its name) is a new incarnation.
   */
  private readonly lostIncarnations = new WeakMap<ReadonlySet<string>, Map<string, string | null>>();

  constructor(private readonly o: ClusterBlockLocatorOptions) {}

  async locate(ctx: ClusterContext, lost: ReadonlySet<string>): Promise<Relocation> {
    const { plan } = ctx;
    const live = await this.o.registry.list('host');
    let seen = this.lostIncarnations.get(lost);
    if (!seen) this.lostIncarnations.set(lost, (seen = new Map()));
    for (const id of lost) if (!seen.has(id)) seen.set(id, live.find((h) => h.id === id)?.incarnation ?? null);
    const hosts = live.filter((h) => !(lost.has(h.id) && seen!.get(h.id) === h.incarnation));
    const alive = new Set(hosts.map((h) => h.id));
    // Per block, the ids it may be held under (a request's private id first, then the shared one).
    const candidates = plan.blocks.map((b) => heldCacheIds(ctx, b.index));
    const found = await this.o.directory.getMany(candidates.flat());
    const cacheIds: string[] = [];
    const handles: (KvHandle | null)[] = [];
    let at = 0;
    candidates.forEach((ids, k) => {
      const held = found.slice(at, (at += ids.length));
      const j = [held.findIndex((h) => h && alive.has(h.hostId)), held.findIndex((h) => h)].find((x) => x >= 0) ?? -1;
      cacheIds[k] = j >= 0 ? ids[j] : encodeCacheId(ctx, k);
      handles[k] = j >= 0 ? held[j] : null;
    });
    const owner: string[] = [];
    const reencoded: number[] = [];
    let fromHost = '';
    plan.blocks.forEach((b, i) => {
      const h = handles[i];
      if (h && alive.has(h.hostId)) owner[i] = h.hostId;
      else {
        reencoded.push(b.index);
        if (h) fromHost = h.hostId;
      }
    });
    if (reencoded.length > 0) {
      if (hosts.length === 0) throw new StarqError('cluster_unavailable', 'no live host actor to encode the context on: start hosts with `starq cluster up`', { status: 503 });
      // Re-encode on hosts that are not draining (a draining host is handing its own blocks away).
      const targets = hosts.filter((h) => !h.status.draining);
      const load = new Map((targets.length > 0 ? targets : hosts).map((h) => [h.id, h.status.kvBytes]));
      for (const k of reencoded) {
        const target = [...load.entries()].sort((a, b) => a[1] - b[1])[0][0];
        const b = plan.blocks[k];
        let handle;
        try {
          cacheIds[k] = encodeCacheId(ctx, k); // a lost block is re-encoded under the request's own id
          handle = await this.o.host(target).encodeBlock({ cacheId: cacheIds[k], ids: Int32Array.from(phase1Tokens(ctx.contextIds, b.phase1)), positions: phase1Positions(b.phase1), keepFrom: b.phase1.keepFrom });
        } catch (e) {
          throw new HostCallError(target, e, `re-encoding block ${k}`); // the serving loop decides whether that host is lost too
        }
        await this.o.directory.putEncoded({
          cacheId: cacheIds[k],
          model: ctx.model,
          contextHash: ctx.contextHash,
          blockIndex: k,
          blockSize: plan.blockSize,
          anchorSize: plan.anchorSize,
          tokenStart: b.start,
          tokenEnd: b.end,
          layers: this.o.numLayers,
          bytes: handle.bytes,
          hostId: target,
        });
        load.set(target, (load.get(target) ?? 0) + handle.bytes);
        owner[k] = target;
      }
    }
    await this.o.directory.touch(cacheIds);
    const placement: ContextPlacement[] = [];
    owner.forEach((hostId, k) => {
      const last = placement[placement.length - 1];
      if (last && last.host.id === hostId) last.cacheIds.push(cacheIds[k]);
      else placement.push({ host: this.o.host(hostId), cacheIds: [cacheIds[k]] });
    });
    return { placement, reencoded, fromHost };
  }
}

/**
 * What a failed actor call means for recovery: the host died or did not answer in time
 * ('host-lost': treat it as dead for the request), or it no longer holds a block ('block-lost').
 */
export function classifyActorFailure(e: unknown): HostFailureKind {
  if (e instanceof ActorDiedError || e instanceof ActorTimeoutError) return 'host-lost';
  // A stopping host answers with `actor_stopped` (it is handing its blocks to the others) and an
  // overloaded one lets calls pass their deadline: both are gone for this request.
  if (e instanceof StarqError && (e.code === SERVER_ERROR_CODES.stopped || e.code === SERVER_ERROR_CODES.deadlineExceeded)) return 'host-lost';
  if (isKvNotFound(e)) return 'block-lost';
  return null;
}
