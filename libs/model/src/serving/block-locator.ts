/**
 * Lost-host recovery's view of the cluster: where a request's context blocks live, and re-encoding
 * (by lineage) the ones that are gone. The in-process cluster keeps this in memory; the Redis
 * cluster reads the KV directory and the actor registry.
 */
import { blockCacheId, type ContextPlacement, type Mode, type StarPlan } from '@starq/attention';

/** What it takes to find or rebuild a request's context blocks. */
export interface EncodedContext {
  mode: Mode;
  plan: StarPlan;
  /** Identity of the encoded context (the shared block cache ids derive from it). */
  contextKey: string;
  /**
   * Key of the request's private blocks (`privateBlockKey`, a `cache: false` request): blocks it
   * has to encode are kept under it, never under the shared ids. @defaultValue none (shared ids)
   */
  privateKey?: string;
  contextIds: ArrayLike<number>; // (N)
}

/** The cache id block `k` is (re-)encoded under for `ctx`: its private id when it has a private key. */
export function encodeCacheId(ctx: EncodedContext, k: number): string {
  return blockCacheId(ctx.privateKey ?? ctx.contextKey, k);
}

/** The cache ids block `k` may be held under for `ctx`, in order of preference: private, then shared. */
export function heldCacheIds(ctx: EncodedContext, k: number): string[] {
  const shared = blockCacheId(ctx.contextKey, k);
  return ctx.privateKey ? [blockCacheId(ctx.privateKey, k), shared] : [shared];
}

/** A fresh placement, and the blocks that had to be re-encoded to get it. */
export interface Relocation {
  placement: ContextPlacement[];
  /** Block indices re-encoded (empty when every block was still in place). */
  reencoded: number[];
  /** The host the re-encoded blocks were lost from ('' when unknown). */
  fromHost: string;
}

/**
 * `C` is what the locator needs to know about a context (a cluster adds the model and the context's
 * hash for the KV directory).
 *
 * Contract: `locate(ctx, lost)` returns a placement of every block of `ctx.plan` on live hosts (one
 * entry per run of blocks on the same host, in block order), re-encoding by lineage (Star phase 1 of
 * that block: anchor ++ block, under `encodeCacheId`) each block whose holder is in `lost`, is not alive, or no longer holds
 * it. Hosts in `lost` get no block. It throws when no live host is left. Ring contexts are not
 * re-encodable by lineage (their K/V come from the exact ring pass): callers do not ask.
 */
export interface BlockLocator<C extends EncodedContext = EncodedContext> {
  locate(ctx: C, lost: ReadonlySet<string>): Promise<Relocation>;
}

/**
 * What a failed host call means for recovery: `'host-lost'` — the host is gone (treat it as dead
 * for the request); `'block-lost'` — the host is alive but no longer holds a block (look again);
 * `null` — not a fault that re-encoding fixes (the request fails with it).
 */
export type HostFailureKind = 'host-lost' | 'block-lost' | null;
