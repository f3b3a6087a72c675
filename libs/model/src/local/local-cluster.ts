/**
 * N simulated hosts and a query actor in one process: each host and the query actor get their
 * own worker-thread engine (their own KV stores), and requests run through the same
 * `generateOnHosts` as on a real cluster.
 */
import os from 'node:os';
import { blockCacheId, planMode, type Mode, type ModeOptions, type StarPlan } from '@starq/attention';
import { contextKey } from '@starq/protocol/context-key';
import { queryLogitsOnHosts, generateOnHosts } from '../distributed';
import type { GenerateOptions, GenerationResult } from '../generate';
import { ModelEngine } from '../runtime/engine';
import type { ExecutorOptions } from '../runtime/executor';
import type { ModelConfig } from '../types';
import { LocalHost, LocalQueryModel } from './local-host';

export interface LocalClusterOptions extends Omit<ExecutorOptions, 'threads'> {
  hosts: number;
  /** ORT threads per host engine. @defaultValue max(1, ⌊cores / hosts⌋) */
  hostThreads?: number;
  /** ORT threads of the query actor's engine. @defaultValue cores */
  queryThreads?: number;
}

export interface LocalRequest extends ModeOptions {
  mode: Mode;
  contextIds: number[];
  queryIds: number[];
}

export interface LocalResult extends GenerationResult {
  mode: Mode;
  plan: StarPlan;
}

let seq = 0;

export class LocalCluster {
  private constructor(
    readonly modelDir: string,
    readonly config: ModelConfig,
    readonly hosts: LocalHost[],
    readonly queryEngine: ModelEngine,
  ) {}

  static async start(modelDir: string, config: ModelConfig, opts: LocalClusterOptions): Promise<LocalCluster> {
    const cores = Math.max(1, os.availableParallelism());
    const { hosts: n, hostThreads, queryThreads, ...exec } = opts;
    const engines: ModelEngine[] = [];
    try {
      for (let i = 0; i < n; i++) engines.push(await ModelEngine.load(modelDir, config, { ...exec, threads: hostThreads ?? Math.max(1, Math.floor(cores / n)) }));
      const q = await ModelEngine.load(modelDir, config, { ...exec, threads: queryThreads ?? cores });
      return new LocalCluster(modelDir, config, engines.map((e, i) => new LocalHost(`local-host-${i}`, e)), q);
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

  async generate(req: LocalRequest, gen: GenerateOptions): Promise<LocalResult> {
    const plan = this.plan(req);
    return this.withRequest(req, plan, req.queryIds.length + gen.maxNewTokens, async (key, qm) => {
      const r = await generateOnHosts({ mode: req.mode, plan, contextIds: req.contextIds, queryIds: req.queryIds, contextKey: key, generate: gen }, this.hosts, qm);
      return { generatedIds: r.generatedIds, finishReason: r.finishReason, timings: r.timings, mode: req.mode, plan };
    });
  }

  /** Teacher-forced logits of every query row (M, vocab). */
  async queryLogits(req: LocalRequest): Promise<Float32Array> {
    const plan = this.plan(req);
    return this.withRequest(req, plan, req.queryIds.length, (key, qm) =>
      queryLogitsOnHosts({ mode: req.mode, plan, contextIds: req.contextIds, queryIds: req.queryIds, contextKey: key }, this.hosts, qm),
    );
  }

  async close(): Promise<void> {
    await Promise.all([...this.hosts.map((h) => h.engine.close()), this.queryEngine.close()]);
  }

  /** Fresh context key and query cache per request; everything released afterwards. */
  private async withRequest<T>(req: LocalRequest, plan: StarPlan, queryReserve: number, fn: (key: string, qm: LocalQueryModel) => Promise<T>): Promise<T> {
    const key = `${contextKey({ model: this.modelDir, mode: req.mode, blockSize: plan.blockSize, anchorSize: plan.anchorSize, contextIds: req.contextIds })}:${process.pid}.${++seq}`;
    const qcache = `${key}/query`;
    await this.queryEngine.createCache(qcache, queryReserve);
    try {
      return await fn(key, new LocalQueryModel(this.queryEngine, qcache));
    } finally {
      await this.queryEngine.dropCache(qcache).catch(() => undefined);
      const ids = plan.blocks.map((b) => blockCacheId(key, b.index));
      await Promise.all(this.hosts.map((h) => h.release(ids).catch(() => undefined)));
    }
  }
}
