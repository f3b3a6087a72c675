/**
 * The JSON payloads of starq's BullMQ jobs and request events. Jobs never carry tensors or token
 * lists of a context: a context's ids live once in Redis (`keys.contextIds(hash)`) and jobs name
 * them by hash plus token ranges.
 */
import type { TokenRange } from '@starq/attention';
import type { GenerationReport } from '@starq/model/generation-report';

/** Phase-1 work for one Star block (a child of the request flow). Pure function of its fields. */
export interface BlockJobData {
  requestId: string;
  model: string;
  /** Cache id the block's K/V are kept under (blockCacheId(contextKey, blockIndex)). */
  cacheId: string;
  contextHash: string;
  contextLength: number;
  blockIndex: number;
  blockSize: number;
  anchorSize: number;
  /** Phase-1 sequence: [anchor,] block token ranges; positions = token indices. */
  segments: TokenRange[];
  keepFrom: number;
}

export interface SamplingData {
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
}

/** A generation request (the flow parent, taken by a query actor once its blocks are encoded). */
export interface RequestJobData {
  requestId: string;
  model: string;
  mode: 'star' | 'global' | 'ring';
  blockSize: number | null;
  anchorSize: number | null;
  hosts: number | null;
  contextHash: string;
  contextLength: number;
  contextKey: string;
  queryIds: number[];
  maxNewTokens: number;
  sampling: SamplingData;
  stopIds: number[];
  ignoreEos: boolean;
  /** Keep the context's KV blocks for later requests. @defaultValue true */
  cache: boolean;
  /** Epoch ms when the client submitted (phase-1 time is measured from here). */
  submittedAt: number;
}

/** A finished request: the generation report without its text (the client decodes), plus block counts. */
export interface RequestResult extends Omit<GenerationReport, 'text'> {
  requestId: string;
  /** Blocks encoded for this request (0 when every block was reused). */
  blocksEncoded: number;
  blocksReused: number;
  /** Blocks re-encoded after a host was lost. */
  blocksRecovered: number;
}

/** Events on `keys.requestEvents(requestId)` (a Redis stream; field `e` holds this JSON). */
export type RequestEvent =
  | { type: 'started'; queryActor: string; blocks: number; reused: number }
  | { type: 'phase1'; done: number; total: number }
  | { type: 'token'; index: number; id: number }
  /** Blocks re-encoded after their host was lost; `toHosts[i]` re-encoded `blocks[i]`. */
  | { type: 'recovered'; blocks: number[]; fromHost: string; toHosts?: string[] }
  /** Phase 2 waits for a place in the query actor's running set (see `ServingLoop` admission). */
  | { type: 'queued'; reason: 'running_set_full' | 'kv_memory'; position: number }
  /** Phase 2 joined the running set after `queuedMs`; `running` requests are now batched together. */
  | { type: 'admitted'; queuedMs: number; running: number }
  | { type: 'done'; result: RequestResult }
  | { type: 'error'; error: { code: string; message: string; param: string | null } };
