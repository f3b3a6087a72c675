/**
 * The contract between the executor and an attention backend (tiled-attention.ts is the fast path,
 * paged-attention.ts the slow reference it is tested against).
 */
import type { Partial } from '@starq/attention';
import type { KvPage } from './kv-cache';

/** Attention calls and FLOPs a backend has issued (the executor's stats hold them). */
export interface AttentionCounters {
  attendCalls: number;
  attendFlops: number;
}

/**
 * Attention of q `(H, Tq, D)` at positions `qpos` (Tq) over the union of the keys of `pages`, as one
 * partial: o `(H, Tq, D)`, lse `(H, Tq)`.
 *   - Key j of a page is visible to row i iff npos[j] ≤ qpos[i] (unwritten slots never are).
 *   - A row with no visible key comes back as o = 0, lse = −∞.
 *   - However the work is cut into ORT calls, the partials of a row's calls are combined with the
 *     exact LSE merge: the result depends on the cut only through float32 rounding.
 *   - `out` (H, Tq, D), when given, receives o and is the returned partial's `o`; every row is
 *     written.
 *   - Each ORT call adds 1 to `counters.attendCalls` and its score FLOPs (4·H·rows·keys·D) to
 *     `counters.attendFlops`.
 * The caller validates shapes and positions; pages are read, never modified.
 */
export interface AttentionBackend {
  attend(q: Float32Array, qpos: Int32Array, pages: KvPage[], out?: Float32Array): Promise<Partial>;
}
