/**
 * Star Attention — Acharya, Jia, Ginsburg, "Star Attention: Efficient LLM Inference over Long
 * Sequences" (arXiv 2411.17116).
 *
 * §2.1 Phase 1, context encoding: the context is cut into blocks; every block k ≥ 1 is encoded
 *      independently on its host as anchor ++ block (anchor = c[0, a'), at positions 0..a'−1; the
 *      block at its global positions), and only the block's K/V are kept.
 * §2.2 Phase 2, query encoding and token generation: the query actor broadcasts each layer's q to
 *      the hosts; each host answers with the partial softmax (o, lse) of q over its blocks; the
 *      query actor merges them exactly with its own partial (query + generated K/V) — see merge.ts.
 *
 * This file is pure orchestration over the `Host` / `QueryModel` contracts (host.ts); the math of
 * each piece lives in the engine, the merge in merge.ts, the block layout in plan.ts.
 */
import { blockCacheId, type BlockHandle, type Host, type QueryModel, type RowGroup } from './host';
import { mergePartials } from './merge';
import type { Partial } from './partial';
import { phase1Positions, phase1Tokens, type StarPlan } from './plan';

/** Where a request's context K/V lives: per host (in host order), the caches of its blocks. */
export interface ContextPlacement {
  host: Host;
  cacheIds: string[];
}

/** Placement of a plan's blocks on hosts (`hosts[i]` serves plan host i). */
export function placement(plan: StarPlan, hosts: Host[], contextKey: string): ContextPlacement[] {
  return plan.assignments.map((a) => ({ host: hosts[a.host], cacheIds: a.blocks.map((k) => blockCacheId(contextKey, k)) }));
}

/**
 * Phase 1: every block encoded on its host. Hosts work in parallel; a host takes its blocks one
 * at a time, in order — its next block is sent when the previous one is encoded, so a host holds
 * the working memory of one encode (not of all its blocks at once: 32 concurrent 16K-token encodes
 * on one engine held ~3 GB of activations) and blocks complete one by one. Resolves when all
 * blocks are encoded; `onBlock` reports each one. On a failed block its host stops and the error
 * is thrown once every host has stopped.
 */
export async function starPhase1(
  plan: StarPlan,
  contextIds: ArrayLike<number>,
  hosts: Host[],
  contextKey: string,
  onBlock?: (handle: BlockHandle, done: number, total: number) => void,
): Promise<ContextPlacement[]> {
  let done = 0;
  const settled = await Promise.allSettled(
    plan.assignments.map(async (a) => {
      const host = hosts[a.host];
      for (const k of a.blocks) {
        const b = plan.blocks[k];
        const handle = await host.encodeBlock({
          cacheId: blockCacheId(contextKey, b.index),
          ids: Int32Array.from(phase1Tokens(contextIds, b.phase1)), // (a' + |B_k|)
          positions: phase1Positions(b.phase1), // (a' + |B_k|)
          keepFrom: b.phase1.keepFrom,
        });
        onBlock?.(handle, ++done, plan.numBlocks);
      }
    }),
  );
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return placement(plan, hosts, contextKey);
}

/** One request's share of a phase-2 step: new rows (query chunk or generated token) and where its context lives. */
export interface StepRequest {
  context: ContextPlacement[];
  /** The request's own cache on the query model. */
  cacheId: string;
  ids: Int32Array; // (T_g)
  positions: Int32Array; // (T_g)
  /** Logits of the last row, of every row (teacher forcing), or none (a query chunk before the last). */
  logits: 'last' | 'all' | 'none';
}

/** A host's batched attend call failed: `hostId` names the host, `cause` is what its call threw. */
export class HostCallError extends Error {
  constructor(
    readonly hostId: string,
    cause: unknown,
    /** What the host was asked to do. @defaultValue 'a phase-2 attend call' */
    call = 'a phase-2 attend call',
  ) {
    super(`host ${hostId} failed ${call}: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'HostCallError';
  }
}

/**
 * Phase 2 for a batch of requests: run each request's new rows through the model with the
 * distributed softmax, returning per request its logits ((1|T_g, vocab), or null for 'none').
 *
 * Per layer: q of all requests' rows from one query-model call → one `attendMany` per host carrying
 * every request's rows for the blocks that host holds → per request, its host partials in its
 * placement order, own partial last, merged exactly → one `post` over the stacked rows (fused with
 * the next layer's q when the query model offers `postQueryLayer`); then one `head` over the rows
 * that need logits. A request's result does not depend on the others in the batch (row
 * independence of the query model, per-item attend, per-request merge).
 *
 * On a failed host call every host call of the layer is awaited, then `HostCallError` of the first
 * failed host (in first-use order) is thrown; the own caches keep the rows appended so far (the
 * caller rolls them back).
 */
export async function starStep(qm: QueryModel, reqs: readonly StepRequest[]): Promise<(Float32Array | null)[]> {
  if (reqs.length === 0) return [];
  const L = qm.numLayers;
  const groups: RowGroup[] = reqs.map((r) => ({ cacheId: r.cacheId, positions: r.positions }));
  const rows = reqs.map((r) => r.ids.length);
  const T = rows.reduce((a, b) => a + b, 0);
  // Host calls of a layer: per host (first-use order), the (request, placement entry) items it serves.
  const calls = new Map<string, { host: Host; items: { g: number; cacheIds: string[] }[] }>();
  const slots: { hostId: string; item: number }[][] = reqs.map(() => []); // per request, placement order
  reqs.forEach((r, g) => {
    for (const c of r.context) {
      let call = calls.get(c.host.id);
      if (!call) calls.set(c.host.id, (call = { host: c.host, items: [] }));
      slots[g].push({ hostId: c.host.id, item: call.items.length });
      call.items.push({ g, cacheIds: c.cacheIds });
    }
  });
  const hostCalls = [...calls.entries()];

  let x = await qm.embed(concatInt32(reqs.map((r) => r.ids))); // (T, hidden)
  let { q, own } = await qm.queryLayer(0, x, groups); // per group q (H, T_g, D)
  for (let l = 0; l < L; l++) {
    const settled = await Promise.allSettled(
      hostCalls.map(([, c]) => c.host.attendMany(c.items.map((it) => ({ cacheIds: it.cacheIds, layer: l, q: q[it.g], qpos: reqs[it.g].positions })))),
    );
    const answers = new Map<string, Partial[]>();
    settled.forEach((s, i) => {
      if (s.status === 'fulfilled') answers.set(hostCalls[i][0], s.value);
    });
    const failed = settled.findIndex((s) => s.status === 'rejected');
    if (failed >= 0) throw new HostCallError(hostCalls[failed][0], (settled[failed] as PromiseRejectedResult).reason);
    const merged = reqs.map((_, g) => mergePartials([...slots[g].map((s) => answers.get(s.hostId)![s.item]), own[g]])); // per group (H, T_g, D)
    const attn = stackHeadRows(merged.map((m) => m.o), rows, merged[0].heads, merged[0].headDim, T); // (H, T, D)
    if (l + 1 < L && qm.postQueryLayer) {
      ({ x, q, own } = await qm.postQueryLayer(l, x, attn, groups)); // post(l) + queryLayer(l+1), one call
    } else {
      x = await qm.post(l, x, attn); // (T, hidden)
      if (l + 1 < L) ({ q, own } = await qm.queryLayer(l + 1, x, groups));
    }
  }
  return headRows(qm, x, reqs, rows, T);
}

/** `head` over the rows that need logits (one call), split back per request. */
async function headRows(qm: QueryModel, x: Float32Array, reqs: readonly StepRequest[], rows: number[], T: number): Promise<(Float32Array | null)[]> {
  const hidden = x.length / T;
  const picks: [number, number][] = []; // per request: [first row, row count] of x to run through head
  let r0 = 0;
  for (let g = 0; g < reqs.length; g++) {
    const mode = reqs[g].logits;
    picks.push(mode === 'all' ? [r0, rows[g]] : mode === 'last' ? [r0 + rows[g] - 1, 1] : [r0, 0]);
    r0 += rows[g];
  }
  const n = picks.reduce((a, p) => a + p[1], 0);
  if (n === 0) return reqs.map(() => null);
  let sel: Float32Array; // (n, hidden)
  const only = picks.filter((p) => p[1] > 0);
  if (only.length === 1) sel = x.subarray(only[0][0] * hidden, (only[0][0] + only[0][1]) * hidden);
  else {
    sel = new Float32Array(n * hidden);
    let o = 0;
    for (const [a, c] of only) {
      sel.set(x.subarray(a * hidden, (a + c) * hidden), o * hidden);
      o += c;
    }
  }
  const logits = await qm.head(sel); // (n, vocab)
  const V = logits.length / n;
  let o = 0;
  return picks.map(([, c]) => {
    if (c === 0) return null;
    const out = logits.subarray(o * V, (o + c) * V); // (c, vocab)
    o += c;
    return out;
  });
}

function concatInt32(parts: Int32Array[]): Int32Array {
  if (parts.length === 1) return parts[0];
  const out = new Int32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Stack per-group (H, T_g, D) arrays into one (H, T, D), group g at rows [Σ_{<g} T, …). */
export function stackHeadRows(parts: Float32Array[], rows: number[], H: number, D: number, T: number): Float32Array {
  if (parts.length === 1) return parts[0];
  const out = new Float32Array(H * T * D); // (H, T, D)
  let r0 = 0;
  parts.forEach((p, g) => {
    const n = rows[g];
    for (let h = 0; h < H; h++) out.set(p.subarray(h * n * D, (h + 1) * n * D), (h * T + r0) * D);
    r0 += n;
  });
  return out;
}
