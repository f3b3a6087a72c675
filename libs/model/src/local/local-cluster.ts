/**
 * N simulated hosts and a query actor in one process: each host and the query actor get their
 * own worker-thread engine (their own KV stores). Phase 1 runs by the mode's algorithm
 * (`encodeContext`), phase 2 in the serving loop (`ServingLoop`) — the same loop the query actor
 * runs on a real cluster, so concurrent `generate` calls are batched together.
 *
 * Lost hosts: `stopHost(i)` ends a host's engine as a crashed host process would; requests whose
 * blocks it held re-encode them on the remaining hosts (this class is the loop's `BlockLocator`).
 */
import os from 'node:os';
import { blockCacheId, phase1Positions, phase1Tokens, planMode, type ContextPlacement, type Mode, type ModeOptions, type StarPlan } from '@starq/attention';
import { contextKey } from '@starq/protocol/context-key';
import { encodeContext, queryLogitsOnHosts } from '../distributed';
import type { GenerateOptions, GenerationResult } from '../generate';
import { checkPositions } from '../positions';
import { ModelEngine } from '../runtime/engine';
import type { ExecutorOptions } from '../runtime/executor';
import { encodeCacheId, heldCacheIds, type BlockLocator, type EncodedContext, type Relocation } from '../serving/block-locator';
import { EngineQueryBackend } from '../serving/query-backend';
import { ServingLoop, type ServingEvent, type ServingOptions } from '../serving/serving-loop';
import type { ModelConfig } from '../types';
import { LocalHost } from './local-host';

export interface LocalClusterOptions extends Omit<ExecutorOptions, 'threads'> {
  hosts: number;
  /** ORT threads per host engine. @defaultValue max(1, ⌊cores / hosts⌋) */
  hostThreads?: number;
  /** ORT threads of the query actor's engine. @defaultValue cores */
  queryThreads?: number;
  /** Serving loop options (batching, running-set limits, query chunk, recoveries). @defaultValue the loop's defaults */
  serving?: Omit<ServingOptions, 'locator' | 'classifyFailure'>;
  /** Hosts encode each anchor once (see `LocalHostOptions.shareAnchors`). @defaultValue true */
  shareAnchors?: boolean;
}

export interface LocalRequest extends ModeOptions {
  mode: Mode;
  contextIds: number[];
  queryIds: number[];
}

/** Per-call extras of `generate`. */
export interface LocalGenerateControl {
  /** Aborting cancels the request. */
  signal?: AbortSignal;
  /** Serving events (queued with its reason, admitted, recovered). */
  onEvent?: (e: ServingEvent) => void;
}

export interface LocalResult extends GenerationResult {
  mode: Mode;
  plan: StarPlan;
  /** Time waiting for a place in the running set (ms). */
  queuedMs: number;
  /** Blocks re-encoded after lost hosts. */
  recoveredBlocks: number;
}

let seq = 0;

export class LocalCluster implements BlockLocator {
  readonly loop: ServingLoop;
  /** Host currently holding each block cache id. */
  private readonly holder = new Map<string, LocalHost>();

  private constructor(
    readonly modelDir: string,
    readonly config: ModelConfig,
    readonly hosts: LocalHost[],
    readonly queryEngine: ModelEngine,
    serving: LocalClusterOptions['serving'],
  ) {
    this.loop = new ServingLoop(new EngineQueryBackend(queryEngine), { ...serving, locator: this });
  }

  static async start(modelDir: string, config: ModelConfig, opts: LocalClusterOptions): Promise<LocalCluster> {
    const cores = Math.max(1, os.availableParallelism());
    const { hosts: n, hostThreads, queryThreads, serving, shareAnchors, ...exec } = opts;
    const engines: ModelEngine[] = [];
    try {
      for (let i = 0; i < n; i++) engines.push(await ModelEngine.load(modelDir, config, { ...exec, threads: hostThreads ?? Math.max(1, Math.floor(cores / n)) }));
      const q = await ModelEngine.load(modelDir, config, { ...exec, threads: queryThreads ?? cores });
      return new LocalCluster(modelDir, config, engines.map((e, i) => new LocalHost(`local-host-${i}`, e, { shareAnchors })), q, serving);
    } catch (e) {
      await Promise.all(engines.map((x) => x.close()));
      throw e;
    }
  }

  plan(req: LocalRequest): StarPlan {
    const plan = planMode(req.mode, req.contextIds.length, req);
    if (plan.effectiveHosts > this.hosts.length) throw new Error(`plan needs ${plan.effectiveHosts} hosts; this local cluster has ${this.hosts.length}`);
    return plan;
  }

  /** Phase 1, then phase 2 in the serving loop (batched with whatever else is running). */
  async generate(req: LocalRequest, gen: GenerateOptions, control: LocalGenerateControl = {}): Promise<LocalResult> {
    checkPositions({ contextTokens: req.contextIds.length, queryTokens: req.queryIds.length, maxNewTokens: gen.maxNewTokens }, this.config);
    const plan = this.plan(req);
    const key = this.requestKey(req, plan);
    const ids = plan.blocks.map((b) => blockCacheId(key, b.index));
    try {
      const t0 = performance.now();
      const placement = await encodeContext({ mode: req.mode, plan, contextIds: req.contextIds, contextKey: key }, this.hosts, this.config.numLayers, gen.onProgress);
      this.remember(placement);
      const phase1Ms = performance.now() - t0;
      const r = await this.loop.submit({
        id: key,
        contextLength: plan.contextLength,
        queryIds: req.queryIds,
        placement,
        context: { mode: req.mode, plan, contextKey: key, contextIds: req.contextIds },
        generate: gen,
        signal: control.signal,
        onEvent: control.onEvent,
      });
      const { queuedMs, ...timings } = r.timings;
      return { generatedIds: r.generatedIds, finishReason: r.finishReason, timings: { phase1Ms, ...timings }, mode: req.mode, plan, queuedMs, recoveredBlocks: r.recoveredBlocks };
    } finally {
      await this.release(ids);
    }
  }

  /** Teacher-forced logits of every query row (M, vocab). */
  async queryLogits(req: LocalRequest): Promise<Float32Array> {
    const plan = this.plan(req);
    const key = this.requestKey(req, plan);
    const qcache = `${key}/query`;
    await this.queryEngine.createCache(qcache, req.queryIds.length);
    try {
      return await queryLogitsOnHosts({ mode: req.mode, plan, contextIds: req.contextIds, queryIds: req.queryIds, contextKey: key }, this.hosts, this.loop.backend, qcache);
    } finally {
      await this.queryEngine.dropCache(qcache).catch(() => undefined);
      await this.release(plan.blocks.map((b) => blockCacheId(key, b.index)));
    }
  }

  /**
   * Stop host `index`'s engine, as if its process had crashed: its blocks are gone and every call
   * to it fails. Requests re-encode its blocks elsewhere; later plans still count it, so start a
   * new cluster for new work that needs all hosts.
   */
  async stopHost(index: number): Promise<void> {
    const h = this.hosts[index];
    if (!h) throw new RangeError(`no host ${index} (this local cluster has ${this.hosts.length})`);
    await h.engine.close();
  }

  /** `BlockLocator`: keep blocks whose live holder still has them; re-encode the rest on the live host holding the fewest blocks. */
  async locate(ctx: EncodedContext, lost: ReadonlySet<string>): Promise<Relocation> {
    const live = this.hosts.filter((h) => h.engine.alive && !lost.has(h.id));
    if (live.length === 0) throw new Error('no live host left in the local cluster to re-encode blocks on');
    const load = new Map(live.map((h) => [h, 0]));
    for (const h of this.holder.values()) if (load.has(h)) load.set(h, load.get(h)! + 1);
    const owners: LocalHost[] = [];
    const cacheIds: string[] = [];
    const reencoded: number[] = [];
    let fromHost = '';
    blocks: for (const b of ctx.plan.blocks) {
      for (const cacheId of heldCacheIds(ctx, b.index)) {
        const h = this.holder.get(cacheId);
        if (h && load.has(h) && (await h.engine.hasCache(cacheId))) {
          owners.push(h);
          cacheIds.push(cacheId);
          continue blocks;
        }
        if (h) fromHost = h.id;
      }
      const cacheId = encodeCacheId(ctx, b.index);
      const target = [...load.entries()].sort((x, y) => x[1] - y[1])[0][0];
      await target.encodeBlock({ cacheId, ids: Int32Array.from(phase1Tokens(ctx.contextIds, b.phase1)), positions: phase1Positions(b.phase1), keepFrom: b.phase1.keepFrom });
      this.holder.set(cacheId, target);
      load.set(target, load.get(target)! + 1);
      owners.push(target);
      cacheIds.push(cacheId);
      reencoded.push(b.index);
    }
    const placement: ContextPlacement[] = [];
    owners.forEach((host, k) => {
      const cacheId = cacheIds[k];
      const last = placement[placement.length - 1];
      if (last && last.host === host) last.cacheIds.push(cacheId);
      else placement.push({ host, cacheIds: [cacheId] });
    });
    return { placement, reencoded, fromHost };
  }

  /** Wait for running requests to finish, then stop every engine. */
  async close(): Promise<void> {
    await this.loop.close();
    await Promise.all([...this.hosts.map((h) => h.engine.close()), this.queryEngine.close()]);
  }

  /** A fresh context key per request (the cluster never shares blocks between requests). */
  private requestKey(req: LocalRequest, plan: StarPlan): string {
    return `${contextKey({ model: this.modelDir, mode: req.mode, blockSize: plan.blockSize, anchorSize: plan.anchorSize, contextIds: req.contextIds })}:${process.pid}.${++seq}`;
  }

  private remember(placement: ContextPlacement[]): void {
    for (const p of placement) for (const id of p.cacheIds) this.holder.set(id, p.host as LocalHost);
  }

  private async release(ids: string[]): Promise<void> {
    for (const id of ids) this.holder.delete(id);
    await Promise.all(this.hosts.filter((h) => h.engine.alive).map((h) => h.release(ids).catch(() => undefined)));
  }
}
