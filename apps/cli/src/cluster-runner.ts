/**
 * `starq generate --redis URL`: the same request on a running cluster — submit the flow, follow
 * its event stream (phase-1 progress, tokens), return the result. Interrupted (SIGINT/SIGTERM),
 * it cancels the request on the cluster before it gives up.
 */
import path from 'node:path';
import { StarqClient, type RequestResult } from '@starq/cluster';
import type { Mode } from '@starq/attention';
import type { GenerateOptions } from '@starq/model/generate';
import { interruptible, InterruptedError } from './interrupt';

export interface ClusterRunRequest {
  redisUrl: string;
  prefix: string;
  modelDir: string;
  contextIds: number[];
  queryIds: number[];
  mode: Mode;
  blockSize?: number;
  anchorSize?: number;
  hosts?: number;
  generate: GenerateOptions;
}

export async function runOnCluster(req: ClusterRunRequest): Promise<RequestResult> {
  const client = await StarqClient.connect(req.redisUrl, { prefix: req.prefix, urlSource: '--redis' });
  try {
    const sub = await client.submit({
      model: path.basename(path.resolve(req.modelDir)),
      mode: req.mode,
      blockSize: req.blockSize,
      anchorSize: req.anchorSize,
      hosts: req.hosts,
      contextIds: req.contextIds,
      queryIds: req.queryIds,
      maxNewTokens: req.generate.maxNewTokens,
      sampling: req.generate.sampling,
      stopIds: req.generate.stopIds,
      ignoreEos: req.generate.ignoreEos,
    });
    const done = client.wait(sub.requestId, {
      token: (id, index) => req.generate.onToken?.(id, index),
      phase1: (done, total) => req.generate.onProgress?.(done, total),
    });
    try {
      return await interruptible(done);
    } catch (e) {
      if (e instanceof InterruptedError) {
        done.catch(() => undefined);
        await client.cancel(sub.requestId, `request ${sub.requestId} was cancelled (starq generate got ${e.signal})`).catch(() => undefined);
      }
      throw e;
    }
  } finally {
    await client.close();
  }
}
