/**
 * Admission to the running set: a request joins when the running set has room (a configured
 * maximum) and the query KV it will hold fits the budget; otherwise it waits, first come first
 * served (a request is never overtaken, so a large one cannot be starved by a stream of small
 * ones), with the reason it waits visible. A request larger than the whole budget is refused.
 */
import { CapacityError } from '@starq/protocol/errors';

export interface AdmissionLimits {
  /** Most requests in the running set at once. @defaultValue 16 */
  maxRunning: number;
  /** Query-side KV bytes the running set may reserve in total. @defaultValue 1 GiB */
  kvBudgetBytes: number;
}

export const DEFAULT_ADMISSION_LIMITS: Readonly<AdmissionLimits> = { maxRunning: 16, kvBudgetBytes: 1024 ** 3 };

/** Why a request waits: the running set is at `maxRunning`, or the KV budget is taken. */
export type WaitReason = 'running_set_full' | 'kv_memory';

export class QueryKvTooLargeError extends CapacityError {
  constructor(bytes: number, budget: number) {
    super('query_kv_too_large', `the request needs ${bytes} bytes of query KV (query + generated tokens) but the query actor's budget is ${budget}: lower max_new_tokens or the query length, or raise the budget`, 'max_new_tokens');
  }
}

/** Bookkeeping of the running set's size and reserved KV (no I/O). */
export class Admission {
  private running = 0;
  private reserved = 0;

  constructor(readonly limits: AdmissionLimits) {
    for (const k of ['maxRunning', 'kvBudgetBytes'] as const) {
      if (!Number.isSafeInteger(limits[k]) || limits[k] < 1) throw new RangeError(`admission ${k} must be an integer ≥ 1, got ${limits[k]}`);
    }
  }

  /** Throws `QueryKvTooLargeError` for a request that could never be admitted. */
  check(bytes: number): void {
    if (bytes > this.limits.kvBudgetBytes) throw new QueryKvTooLargeError(bytes, this.limits.kvBudgetBytes);
  }

  /** Null when a request reserving `bytes` fits now, else why it must wait. */
  blocker(bytes: number): WaitReason | null {
    if (this.running >= this.limits.maxRunning) return 'running_set_full';
    if (this.reserved + bytes > this.limits.kvBudgetBytes) return 'kv_memory';
    return null;
  }

  take(bytes: number): void {
    this.running++;
    this.reserved += bytes;
  }

  give(bytes: number): void {
    this.running--;
    this.reserved -= bytes;
  }

  get runningCount(): number {
    return this.running;
  }

  get reservedBytes(): number {
    return this.reserved;
  }
}
