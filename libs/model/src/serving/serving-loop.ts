/**
 * Star phase 2 for a running set of requests with continuous batching — the one loop that serves
 * requests in-process (`LocalCluster`) and on the cluster (the query actor), over any `Host[]`.
 *
 *   submit(request) ──► waiting (FIFO; `queued` event with the reason) ──► admitted (Admission:
 *   running-set maximum, query KV budget) ──► running set ──► steps ──► result
 *
 * One step advances every running request by one unit of work: a chunk of its query (≤
 * `maxQueryRowsPerStep` rows) or one generated token. The step is `starStep` over all of them at
 * once (one query-model call and one `attendMany` per host per layer, one `post`, one `head`), then
 * each request samples from its own logits. Requests join and leave between steps; a finished or
 * cancelled request leaves at once and frees its own cache and its share of the KV budget.
 *
 * Exactness: every request's tokens are those it would get alone — the query model is row
 * independent, hosts answer per item, partials merge per request (hosts in placement order, own
 * last), and each request samples with its own seeded RNG.
 *
 * Failures: a step that fails rolls back every member's own cache to its length before the step.
 * A host failure that re-encoding fixes (`classifyFailure`) re-places the affected requests' blocks
 * through the `BlockLocator` (at most `maxRecoveries` times per request; a host that fails while
 * re-encoding counts as one more, and a host that lacks a block the locator still places on it is
 * treated as lost for the request) and the step is retried; a request that cannot recover fails
 * alone with a `HostLostError` (code `host_lost`: the host, the recoveries used, the hosts lost). Any other failure of a multi-request step re-runs its
 * members one by one, so only the request at fault fails.
 */
import { HostCallError, starStep, type ContextPlacement, type StepRequest } from '@starq/attention';
import { InvalidInputError, StarqError } from '@starq/protocol/errors';
import { validateGenerateOptions, type GenerateOptions, type GenerationResult } from '../generate';
import { EngineDiedError } from '../runtime/engine';
import { HostLostError } from './host-lost-error';
import { Rng, sample } from '../sampling';
import { Admission, DEFAULT_ADMISSION_LIMITS, type AdmissionLimits, type WaitReason } from './admission';
import { heldCacheIds, type BlockLocator, type EncodedContext, type HostFailureKind } from './block-locator';
import type { QueryBackend } from './query-backend';
import { ServingMetrics, type ServingSnapshot, type StepRecord } from './serving-metrics';

export interface ServingOptions<C extends EncodedContext = EncodedContext> extends Partial<AdmissionLimits> {
  /**
   * Advance all running requests in one batched step (true), or each request in its own steps,
   * concurrently (false: the unbatched baseline for benchmarks). @defaultValue true
   */
  batching?: boolean;
  /** Query rows of one request per step; a longer query takes several steps. @defaultValue 512 */
  maxQueryRowsPerStep?: number;
  /** Lost-host recoveries per request before it fails. @defaultValue 3 */
  maxRecoveries?: number;
  /** Finds and re-encodes lost blocks; without it no request recovers. */
  locator?: BlockLocator<C>;
  /**
   * What a host call's error means (see `HostFailureKind`).
   * @defaultValue `EngineDiedError` (an in-process host's engine is gone) → 'host-lost', else null
   */
  classifyFailure?: (e: unknown) => HostFailureKind;
  /** Called after every step. */
  onStep?: (s: StepRecord) => void;
}

export type ServingEvent =
  | { type: 'queued'; reason: WaitReason; position: number }
  | { type: 'admitted'; queuedMs: number; running: number }
  /** `toHosts[i]`: the host that re-encoded `blocks[i]`. */
  | { type: 'recovered'; blocks: number[]; fromHost: string; toHosts: string[] };

/** A request whose context is encoded (phase 1 done), ready for phase 2. */
export interface ServingRequest<C extends EncodedContext = EncodedContext> {
  /** Unique among the loop's requests (names its own cache). */
  id: string;
  /** N: the query's rows sit at positions N, N+1, … */
  contextLength: number;
  queryIds: number[];
  /** Where the context K/V live. */
  placement: ContextPlacement[];
  /** For lost-host recovery; without it (or in ring mode) the request fails on a lost host. */
  context?: C;
  /** `maxNewTokens`, `sampling`, `stopIds`, `ignoreEos`, `onToken` are used. */
  generate: GenerateOptions;
  /**
   * Aborting cancels the request (it leaves at the next step boundary, or at once if waiting) and
   * rejects it with `RequestCancelledError` — or with the abort reason when that is an Error of
   * the caller's (e.g. a hand-back to the queue).
   */
  signal?: AbortSignal;
  onEvent?: (e: ServingEvent) => void;
}

export interface ServingResult extends Omit<GenerationResult, 'timings'> {
  timings: Omit<GenerationResult['timings'], 'phase1Ms'> & {
    /** Time from submit to admission. */
    queuedMs: number;
  };
  /** The placement the request ended with (differs from the submitted one after a recovery). */
  placement: ContextPlacement[];
  /** Blocks re-encoded after lost hosts. */
  recoveredBlocks: number;
}

export class RequestCancelledError extends StarqError {
  constructor(requestId: string) {
    super('cancelled', `request ${requestId} was cancelled`, { status: 409 });
  }
}

export class LoopClosedError extends StarqError {
  constructor() {
    super('shutting_down', 'the serving loop is closed: submit to another query actor', { status: 503 });
  }
}

const defaultClassify = (e: unknown): HostFailureKind => (e instanceof EngineDiedError ? 'host-lost' : null);

/** One request inside the loop. */
class Running<C extends EncodedContext> {
  readonly cacheId: string;
  readonly reserveTokens: number;
  readonly rng: Rng;
  readonly stop: Set<number>;
  readonly submittedAt = performance.now();
  admittedAt = 0;
  cacheReady = false;
  /** Own-cache rows appended by completed steps (the rollback point). */
  cached = 0;
  queryDone = 0;
  readonly generated: number[] = [];
  pending = -1;
  firstTokenAt = 0;
  finishReason: 'length' | 'stop' = 'length';
  placement: ContextPlacement[];
  readonly lost = new Set<string>();
  recoveries = 0;
  recoveredBlocks = 0;
  waitReason: WaitReason | null = null;
  waitPosition = -1;
  done = false;
  resolve!: (r: ServingResult) => void;
  reject!: (e: unknown) => void;
  readonly result: Promise<ServingResult>;

  constructor(
    readonly req: ServingRequest<C>,
    readonly bytes: number,
  ) {
    this.cacheId = `${req.id}/query`;
    this.reserveTokens = req.queryIds.length + req.generate.maxNewTokens;
    this.rng = new Rng(req.generate.sampling.seed);
    this.stop = new Set(req.generate.ignoreEos ? [] : req.generate.stopIds);
    this.placement = req.placement;
    this.result = new Promise((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
  }

  /** The rows this request contributes to the next step. */
  nextRows(maxQueryRows: number): StepRequest {
    const { contextLength: N, queryIds } = this.req;
    const M = queryIds.length;
    if (this.queryDone < M) {
      const n = Math.min(maxQueryRows, M - this.queryDone);
      const s = this.queryDone;
      return {
        context: this.placement,
        cacheId: this.cacheId,
        ids: Int32Array.from(queryIds.slice(s, s + n)), // (n)
        positions: Int32Array.from({ length: n }, (_, i) => N + s + i), // (n)
        logits: s + n === M ? 'last' : 'none',
      };
    }
    return { context: this.placement, cacheId: this.cacheId, ids: Int32Array.of(this.pending), positions: Int32Array.of(N + M + this.generated.length - 1), logits: 'last' };
  }
}

export class ServingLoop<C extends EncodedContext = EncodedContext> {
  private readonly admission: Admission;
  private readonly waiting: Running<C>[] = [];
  private readonly running = new Set<Running<C>>();
  private readonly ids = new Set<string>();
  readonly metrics = new ServingMetrics();
  private driving = false;
  private closed = false;
  private readonly batching: boolean;
  private readonly maxQueryRows: number;
  private readonly maxRecoveries: number;
  private readonly classify: (e: unknown) => HostFailureKind;
  private idleWaiters: (() => void)[] = [];

  constructor(
    readonly backend: QueryBackend,
    private readonly opts: ServingOptions<C> = {},
  ) {
    this.admission = new Admission({ maxRunning: opts.maxRunning ?? DEFAULT_ADMISSION_LIMITS.maxRunning, kvBudgetBytes: opts.kvBudgetBytes ?? DEFAULT_ADMISSION_LIMITS.kvBudgetBytes });
    this.batching = opts.batching ?? true;
    this.maxQueryRows = opts.maxQueryRowsPerStep ?? 512;
    this.maxRecoveries = opts.maxRecoveries ?? 3;
    this.classify = opts.classifyFailure ?? defaultClassify;
    for (const [k, v] of [['maxQueryRowsPerStep', this.maxQueryRows], ['maxRecoveries', this.maxRecoveries + 1]] as const) {
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`serving ${k} must be an integer ≥ ${k === 'maxRecoveries' ? 0 : 1}, got ${k === 'maxRecoveries' ? v - 1 : v}`);
    }
  }

  /** Queue a request; resolves with its result when it finishes (rejects when it fails or is cancelled). */
  submit(req: ServingRequest<C>): Promise<ServingResult> {
    try {
      if (this.closed) throw new LoopClosedError();
      validateGenerateOptions(req.generate);
      if (req.queryIds.length === 0) throw new InvalidInputError('empty_query', 'the query has no tokens: phase 2 needs at least one', 'query');
      if (this.ids.has(req.id)) throw new Error(`request id ${req.id} is already in the serving loop`);
      const bytes = (req.queryIds.length + req.generate.maxNewTokens) * this.backend.kvBytesPerToken;
      this.admission.check(bytes);
      const e = new Running(req, bytes);
      this.ids.add(req.id);
      this.waiting.push(e);
      req.signal?.addEventListener('abort', () => this.abortWaiting(e), { once: true });
      this.pump();
      return e.result;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Running set, queue and step statistics. */
  snapshot(): ServingSnapshot {
    return this.metrics.snapshot(this.running.size, this.waiting.length);
  }

  /** Refuse new requests, fail the waiting ones, and resolve once the running ones have finished. */
  async close(): Promise<void> {
    this.closed = true;
    for (const e of this.waiting.splice(0)) this.settle(e, new LoopClosedError());
    if (this.running.size > 0) await new Promise<void>((r) => this.idleWaiters.push(r));
  }

  // ------------------------------------------------------------------ admission

  private pump(): void {
    while (this.waiting.length > 0) {
      const e = this.waiting[0];
      const why = this.admission.blocker(e.bytes);
      if (why) break;
      this.waiting.shift();
      this.admission.take(e.bytes);
      this.running.add(e);
      e.admittedAt = performance.now();
      this.emit(e, { type: 'admitted', queuedMs: e.admittedAt - e.submittedAt, running: this.running.size });
      if (!this.batching) void this.drive(() => (e.done ? [] : [e]));
    }
    // Tell waiting requests why they wait (only when that changed).
    this.waiting.forEach((e, i) => {
      const why = this.admission.blocker(e.bytes) ?? 'running_set_full';
      if (why !== e.waitReason || i !== e.waitPosition) {
        e.waitReason = why;
        e.waitPosition = i;
        this.emit(e, { type: 'queued', reason: why, position: i });
      }
    });
    if (this.batching && !this.driving && this.running.size > 0) {
      this.driving = true;
      void this.drive(() => [...this.running]).finally(() => {
        this.driving = false;
        this.pump();
      });
    }
  }

  private abortWaiting(e: Running<C>): void {
    const i = this.waiting.indexOf(e);
    if (i < 0) return; // running: leaves at the next step boundary
    this.waiting.splice(i, 1);
    this.settle(e, abortError(e.req));
    this.pump();
  }

  // ------------------------------------------------------------------ steps

  /** Run steps over `pick()`'s requests until it returns none. Never throws. */
  private async drive(pick: () => Running<C>[]): Promise<void> {
    for (;;) {
      const batch = pick().filter((e) => !e.done);
      if (batch.length === 0) return;
      try {
        await this.step(batch);
      } catch (err) {
        for (const e of batch) if (!e.done) this.finish(e, err); // a bug in the loop itself: fail, never hang
      }
    }
  }

  private async step(batch: Running<C>[]): Promise<void> {
    const members: Running<C>[] = [];
    for (const e of batch) {
      if (e.req.signal?.aborted) {
        this.finish(e, abortError(e.req));
        continue;
      }
      if (!e.cacheReady) {
        try {
          await this.backend.createCache(e.cacheId, e.reserveTokens);
          e.cacheReady = true;
        } catch (err) {
          this.finish(e, err);
          continue;
        }
      }
      members.push(e);
    }
    if (members.length === 0) return;
    const reqs = members.map((e) => e.nextRows(this.maxQueryRows));
    const t0 = performance.now();
    let logits: (Float32Array | null)[];
    try {
      logits = await starStep(this.backend, reqs);
    } catch (err) {
      await this.recover(members, err);
      return;
    }
    const ms = performance.now() - t0;
    let tokens = 0;
    members.forEach((e, i) => {
      if (this.advance(e, reqs[i], logits[i])) tokens++;
    });
    const rec: StepRecord = { at: Date.now(), batch: members.length, rows: reqs.reduce((n, r) => n + r.ids.length, 0), tokens, ms };
    this.metrics.record(rec);
    this.opts.onStep?.(rec);
  }

  /** Apply a step's result to one request; true when it generated a token. */
  private advance(e: Running<C>, r: StepRequest, logits: Float32Array | null): boolean {
    e.cached += r.ids.length;
    const M = e.req.queryIds.length;
    if (e.queryDone < M) {
      e.queryDone += r.ids.length;
      if (e.queryDone < M) return false;
    }
    const g = e.req.generate;
    if (e.generated.length >= g.maxNewTokens) {
      this.finish(e, null);
      return false;
    }
    const id = sample(logits!, g.sampling, e.rng);
    if (e.generated.length === 0) e.firstTokenAt = performance.now();
    if (e.stop.has(id)) {
      e.finishReason = 'stop';
      this.finish(e, null);
      return false;
    }
    e.generated.push(id);
    try {
      g.onToken?.(id, e.generated.length - 1);
    } catch (err) {
      this.finish(e, err);
      return true;
    }
    if (e.generated.length >= g.maxNewTokens) this.finish(e, null);
    else e.pending = id;
    return true;
  }

  /** A step failed: roll back, then recover, isolate or fail (see the file comment). */
  private async recover(members: Running<C>[], err: unknown): Promise<void> {
    try {
      await Promise.all(members.map((e) => this.backend.truncateCache(e.cacheId, e.cached)));
    } catch {
      for (const e of members) this.finish(e, unwrap(err)); // the query backend itself is broken
      return;
    }
    const kind = err instanceof HostCallError ? this.classify(err.cause) : null;
    if (err instanceof HostCallError && kind) {
      for (const e of members) {
        if (!e.placement.some((p) => p.host.id === err.hostId)) continue;
        await this.relocate(e, err, kind);
      }
      return;
    }
    if (members.length === 1) {
      this.finish(members[0], unwrap(err));
      return;
    }
    for (const e of members) if (!e.done) await this.step([e]); // find the request at fault
  }

  /**
   * Re-place a request's blocks after host `failure.hostId` failed it (`kind`). A host that fails
   * while re-encoding (the locator reports it as a HostCallError of its own) counts as one more
   * recovery. Fails the request with a HostLostError once it cannot recover.
   */
  private async relocate(e: Running<C>, failure: HostCallError, kind: Exclude<HostFailureKind, null>): Promise<void> {
    const ctx = e.req.context;
    const lostOne = (f: HostCallError, k: HostFailureKind) => {
      if (k === 'host-lost' && !e.lost.has(f.hostId)) e.lost.add(f.hostId);
    };
    const fail = (f: HostCallError, why: string, cause: unknown = f.cause) => this.finish(e, new HostLostError(e.req.id, f.hostId, e.recoveries, [...e.lost], why, cause));
    if (!ctx || ctx.mode === 'ring' || !this.opts.locator) {
      lostOne(failure, kind);
      fail(failure, ctx?.mode === 'ring' ? 'a Ring context is not re-encodable block by block' : 'no block locator to re-encode its blocks');
      return;
    }
    let f = failure;
    let k: HostFailureKind = kind;
    for (;;) {
      lostOne(f, k);
      if (e.recoveries >= this.maxRecoveries) {
        fail(f, `it already used its ${this.maxRecoveries} recoveries`);
        return;
      }
      e.recoveries++;
      try {
        const r = await this.opts.locator.locate(ctx, e.lost);
        if (k === 'block-lost' && r.reencoded.length === 0 && r.placement.some((p) => p.host.id === f.hostId)) {
          // The host says it lacks a block the locator still places on it (a stale record of
          // where the block is): the host is right; stop using it for this request.
          k = 'host-lost';
          continue;
        }
        e.placement = r.placement;
        e.recoveredBlocks += r.reencoded.length;
        if (r.reencoded.length > 0) {
          const holder = (b: number) => r.placement.find((p) => heldCacheIds(ctx, b).some((id) => p.cacheIds.includes(id)))?.host.id ?? '';
          this.emit(e, { type: 'recovered', blocks: r.reencoded, fromHost: r.fromHost || f.hostId, toHosts: r.reencoded.map(holder) });
        }
        return;
      } catch (x) {
        const xk = x instanceof HostCallError ? this.classify(x.cause) : null;
        if (x instanceof HostCallError && xk) {
          f = x; // the re-encoding target failed too: one more recovery
          k = xk;
          continue;
        }
        fail(f, `re-encoding its blocks failed: ${(x as Error)?.message ?? String(x)}`, f.cause);
        return;
      }
    }
  }

  /** Leave the running set: free the cache and the budget, settle the promise, admit others. */
  private finish(e: Running<C>, err: unknown): void {
    if (e.done) return;
    this.running.delete(e);
    this.admission.give(e.bytes);
    if (e.cacheReady) void this.backend.dropCache(e.cacheId).catch(() => undefined);
    this.settle(e, err);
    if (this.running.size === 0) for (const w of this.idleWaiters.splice(0)) w();
    this.pump();
  }

  private settle(e: Running<C>, err: unknown): void {
    e.done = true;
    this.ids.delete(e.req.id);
    if (err) {
      e.reject(err);
      return;
    }
    const end = performance.now();
    const n = e.generated.length;
    e.resolve({
      generatedIds: e.generated,
      finishReason: e.finishReason,
      timings: {
        queuedMs: e.admittedAt - e.submittedAt,
        phase2Ms: end - e.submittedAt,
        firstTokenMs: e.firstTokenAt > 0 ? e.firstTokenAt - e.submittedAt : 0,
        decodeTokensPerSec: n > 1 ? (n - 1) / ((end - e.firstTokenAt) / 1000) : 0,
      },
      placement: e.placement,
      recoveredBlocks: e.recoveredBlocks,
    });
  }

  private emit(e: Running<C>, ev: ServingEvent): void {
    try {
      e.req.onEvent?.(ev);
    } catch {
      // a listener's failure is the listener's: the request goes on
    }
  }
}

/** What an aborted request is rejected with: the caller's reason when it is an Error, else `RequestCancelledError`. */
function abortError(req: { id: string; signal?: AbortSignal }): unknown {
  const r: unknown = req.signal?.reason;
  return r instanceof Error && r.name !== 'AbortError' ? r : new RequestCancelledError(req.id);
}

/** A host call's own error (its code and message) rather than the wrapper. */
function unwrap(err: unknown): unknown {
  return err instanceof HostCallError ? err.cause : err;
}
