/**
 * In-process execution of one `starq generate`: plan the mode, start one engine per host plus the
 * query actor's, run, shut down.
 */
import { planMode, type Mode, type StarPlan } from '@starq/attention';
import type { GenerateOptions, GenerationResult } from '@starq/model/generate';
import { LocalCluster } from '@starq/model/local/local-cluster';
import type { ModelConfig } from '@starq/model/types';

export interface LocalRunRequest {
  modelDir: string;
  config: ModelConfig;
  contextIds: number[];
  queryIds: number[];
  mode: Mode;
  blockSize?: number;
  anchorSize?: number;
  hosts?: number;
  threads?: number;
  generate: GenerateOptions;
}

export interface LocalRunResult extends GenerationResult {
  mode: Mode;
  plan: StarPlan;
}

export async function runLocal(req: LocalRunRequest): Promise<LocalRunResult> {
  const plan = planMode(req.mode, req.contextIds.length, req); // validates before any engine starts
  const cluster = await LocalCluster.start(req.modelDir, req.config, {
    hosts: plan.effectiveHosts,
    hostThreads: req.threads,
    queryThreads: req.threads,
  });
  try {
    return await cluster.generate({ mode: req.mode, contextIds: req.contextIds, queryIds: req.queryIds, blockSize: req.blockSize, anchorSize: req.anchorSize, hosts: req.hosts }, req.generate);
  } finally {
    await cluster.close();
  }
}
