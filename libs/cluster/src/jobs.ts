/**
 * The JSON payloads of starq's BullMQ jobs and request events. Jobs never carry tensors or token
 * lists of a context: a context's ids live once in Redis (`keys.contextIds(hash)`) and jobs name
 * them by hash plus token ranges.
 */
import { MODES, type Mode, type TokenRange } from '@starq/attention';
import type { GenerationReport } from '@starq/model/generation-report';
import { ProtocolError, is, validator, type Validator } from '@starq/protocol';

/** Phase-1 work for one Star block (a child of the request flow). Pure function of its fields. */
export interface BlockJobData {
  requestId: string;
  model: string;
  /**
   * Cache id the block's K/V are kept under: blockCacheId(contextKey, blockIndex), or for a
   * `cache: false` request blockCacheId(privateBlockKey(contextKey, requestId), blockIndex).
   */
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
  mode: Mode;
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
  /**
   * Keep the context's KV blocks for later requests. False: blocks the request encodes (its block
   * jobs, re-encoded lost blocks) are kept under `privateBlockKey(contextKey, requestId)`, found by
   * no other request, and released when it ends; shared blocks it reused stay. @defaultValue true
   */
  cache: boolean;
  /**
   * Indices of the blocks this request's own block jobs encode (the flow's children). The other
   * blocks were reused from the cache.
   */
  encodedBlocks?: number[];
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
  /** `at`: epoch ms when the query actor sampled the token (its clock; Redis may log the event later). */
  | { type: 'token'; index: number; id: number; at?: number }
  /** Blocks re-encoded after their host was lost; `toHosts[i]` re-encoded `blocks[i]`. */
  | { type: 'recovered'; blocks: number[]; fromHost: string; toHosts?: string[] }
  /** Phase 2 waits for a place in the query actor's running set (see `ServingLoop` admission). */
  | { type: 'queued'; reason: 'running_set_full' | 'kv_memory'; position: number }
  /** Phase 2 joined the running set after `queuedMs`; `running` requests are now batched together. */
  | { type: 'admitted'; queuedMs: number; running: number }
  /** The actor running the request (`job: 'request'`) or one of its block jobs died; the job went back to the queue. */
  | { type: 'requeued'; job: 'request' | 'block'; block: number | null; actor: string }
  | { type: 'done'; result: RequestResult }
  | { type: 'error'; error: { code: string; message: string; param: string | null } };

/**
 * Checks a `blocks` job's data (JSON from Redis): every field, the ranges inside the context, and
 * keepFrom inside the input. @throws ProtocolError naming the field.
 */
export const validateBlockJob: Validator<BlockJobData> = validator<BlockJobData>('block', {
  required: {
    requestId: is.id,
    model: is.str,
    cacheId: is.id,
    contextHash: is.id,
    contextLength: is.nat,
    blockIndex: is.nat,
    blockSize: is.nat,
    anchorSize: is.nat,
    segments: is.ranges,
    keepFrom: is.nat,
  },
  post: (m, name) => {
    const segments = m.segments as TokenRange[];
    const outside = segments.findIndex((r) => r.end > (m.contextLength as number));
    if (outside >= 0) {
      throw new ProtocolError(`${name}.segments[${outside}] ends at ${segments[outside].end}, past the context's ${m.contextLength} tokens`, { param: `${name}.segments` });
    }
    const total = segments.reduce((n, r) => n + r.end - r.start, 0);
    if ((m.keepFrom as number) >= total) throw new ProtocolError(`${name}.keepFrom (${m.keepFrom}) must be < the input length (${total} tokens over all segments)`, { param: `${name}.keepFrom` });
  },
});

const SAMPLING = { required: { temperature: is.num, topK: is.nat, topP: is.num, seed: is.num } };

/** Checks a `requests` job's data (JSON from Redis). @throws ProtocolError naming the field. */
export const validateRequestJob: Validator<RequestJobData> = validator<RequestJobData>('request', {
  required: {
    requestId: is.id,
    model: is.str,
    mode: is.oneOf(MODES),
    blockSize: is.orNull(is.nat),
    anchorSize: is.orNull(is.nat),
    hosts: is.orNull(is.nat),
    contextHash: is.id,
    contextLength: is.nat,
    contextKey: is.id,
    queryIds: is.natList,
    maxNewTokens: is.nat,
    sampling: is.object(SAMPLING),
    stopIds: is.natList,
    ignoreEos: is.bool,
    cache: is.bool,
    submittedAt: is.epochMs,
  },
});
