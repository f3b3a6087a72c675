/**
 * Where a speed cell runs. A backend runs one request (phase 1 + phase 2) of a cell and reports
 * the peak RSS of the processes that did the work during that cell.
 *
 * - `InProcessBackend`: a fresh `LocalCluster` per cell — H host engines in worker threads with
 *   ⌊threads/H⌋ ORT threads each, plus the query engine with all threads (Global: one host with all
 *   threads). Peak RSS = this process's high-water mark, reset when the cell starts; base RSS =
 *   this process's RSS once the cell's engines are loaded, before the request.
 * - `ClusterBackend`: real actor processes on Redis (`startProcessCluster`), one cluster per host
 *   count, started when first needed and kept for the following cells of that count; requests are
 *   submitted with `cache: false` so no KV outlives its cell. Peak RSS = sum over the actor
 *   processes of their high-water marks, reset when the cell starts; base RSS = the sum of their
 *   RSS before the request.
 */
import path from 'node:path';
import { createRedis, deleteKeysByPrefix } from '@starq/actors';
import { startProcessCluster, StarqClient, type LocalProcessCluster } from '@starq/cluster';
import type { GenerateOptions, Timings } from '@starq/model/generate';
import { LocalCluster } from '@starq/model/local/local-cluster';
import { peakRssBytes, resetPeakRss, rssBytes } from '@starq/model/perf/peak-rss';
import type { ModelConfig } from '@starq/model/types';
import { interruptible } from '../interrupt';
import type { SpeedCellSpec } from './cells';

export interface CellRun {
  generatedIds: number[];
  timings: Timings;
  peakRssBytes: number;
  /** RSS of the same processes with their engines loaded, before the request. */
  baseRssBytes: number;
}

export interface SpeedBackend {
  readonly name: 'in-process' | 'cluster';
  run(cell: SpeedCellSpec, contextIds: number[], queryIds: number[], gen: GenerateOptions): Promise<CellRun>;
  close(): Promise<void>;
}

export class InProcessBackend implements SpeedBackend {
  readonly name = 'in-process' as const;

  constructor(
    private readonly modelDir: string,
    private readonly config: ModelConfig,
    private readonly threads: number,
    /** `ExecutorOptions.maxRowsPerCall` of every engine (null: the default). */
    private readonly maxRowsPerCall: number | null = null,
  ) {}

  async run(cell: SpeedCellSpec, contextIds: number[], queryIds: number[], gen: GenerateOptions): Promise<CellRun> {
    resetPeakRss();
    const cluster = await LocalCluster.start(this.modelDir, this.config, {
      hosts: cell.hosts,
      hostThreads: Math.max(1, Math.floor(this.threads / cell.hosts)),
      queryThreads: this.threads,
      ...(this.maxRowsPerCall !== null ? { maxRowsPerCall: this.maxRowsPerCall } : {}),
    });
    const baseRssBytes = rssBytes();
    try {
      const r = await cluster.generate(
        { mode: cell.mode, contextIds, queryIds, ...(cell.mode === 'global' ? {} : { blockSize: cell.blockSize, hosts: cell.hosts }), ...(cell.mode === 'star' ? { anchorSize: cell.anchorSize } : {}) },
        gen,
      );
      return { generatedIds: r.generatedIds, timings: r.timings, peakRssBytes: peakRssBytes(), baseRssBytes };
    } finally {
      await cluster.close();
    }
  }

  async close(): Promise<void> {
    // every cell closes its own engines
  }
}

export class ClusterBackend implements SpeedBackend {
  readonly name = 'cluster' as const;
  private readonly clusters = new Map<number, LocalProcessCluster>();

  constructor(
    private readonly modelDir: string,
    private readonly threads: number,
    private readonly prefix: string,
    private readonly redisUrl: string | undefined,
    /** STARQ_MAX_ROWS_PER_CALL of every actor (null: the engine default). */
    private readonly maxRowsPerCall: number | null,
    private readonly log: (line: string) => void,
  ) {}

  private async clusterFor(hosts: number): Promise<LocalProcessCluster> {
    const have = this.clusters.get(hosts);
    if (have) return have;
    // One cluster at a time: the previous host count's processes would only compete for cores.
    await this.close();
    const c = await startProcessCluster({
      hosts,
      threads: Math.max(1, Math.floor(this.threads / hosts)),
      queryThreads: this.threads,
      prefix: `${this.prefix}:h${hosts}`,
      redisUrl: this.redisUrl,
      modelDir: this.modelDir,
      ...(this.maxRowsPerCall !== null ? { actorEnv: { STARQ_MAX_ROWS_PER_CALL: String(this.maxRowsPerCall) } } : {}),
      log: this.log,
    });
    this.clusters.set(hosts, c);
    return c;
  }

  async run(cell: SpeedCellSpec, contextIds: number[], queryIds: number[], gen: GenerateOptions): Promise<CellRun> {
    const cluster = await this.clusterFor(cell.hosts);
    for (const pid of cluster.actorPids) resetPeakRss(pid);
    const baseRssBytes = cluster.actorPids.reduce((s, pid) => s + rssBytes(pid), 0);
    const client = await StarqClient.connect(cluster.redisUrl, { prefix: cluster.prefix });
    try {
      const sub = await client.submit({
        model: path.basename(path.resolve(this.modelDir)),
        mode: cell.mode,
        blockSize: cell.mode === 'global' ? undefined : cell.blockSize,
        anchorSize: cell.mode === 'star' ? cell.anchorSize : undefined,
        hosts: cell.mode === 'global' ? undefined : cell.hosts,
        contextIds,
        queryIds,
        maxNewTokens: gen.maxNewTokens,
        sampling: gen.sampling,
        stopIds: gen.stopIds,
        ignoreEos: gen.ignoreEos,
        cache: false,
      });
      const r = await interruptible(client.wait(sub.requestId, {
        token: (id, index) => gen.onToken?.(id, index),
        phase1: (done, total) => gen.onProgress?.(done, total),
      }));
      const rss = cluster.actorPids.reduce((s, pid) => s + peakRssBytes(pid), 0);
      return { generatedIds: r.generatedIds, timings: r.timings, peakRssBytes: rss, baseRssBytes };
    } finally {
      await client.close();
    }
  }

  /** Stop every actor process and delete this benchmark's Redis keys. */
  async close(): Promise<void> {
    const urls = new Set<string>();
    for (const c of this.clusters.values()) {
      urls.add(c.redisUrl);
      await c.stop();
    }
    this.clusters.clear();
    for (const url of urls) {
      const redis = await createRedis(url).catch(() => null); // a private redis-server is gone with its cluster
      if (!redis) continue;
      try {
        await deleteKeysByPrefix(redis, this.prefix);
      } finally {
        redis.disconnect();
      }
    }
  }
}
