/**
 * In-process execution of one generation request: loads the model into worker-thread engines and
 * runs the requested attention mode.
 */
import os from 'node:os';
import { InvalidInputError } from '@starq/protocol/errors';
import { generateGlobal, type GenerateOptions, type GenerationResult } from '@starq/model/generate';
import { ModelEngine } from '@starq/model/runtime/engine';
import type { ModelConfig } from '@starq/model/types';

export const MODES = ['star', 'global', 'ring'] as const;
export type Mode = (typeof MODES)[number];

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
  blockSize: number | null;
  anchorSize: number | null;
  hosts: number;
}

export async function runLocal(req: LocalRunRequest): Promise<LocalRunResult> {
  if (req.mode !== 'global') {
    throw new InvalidInputError('unsupported_mode', `--mode ${req.mode} is not available in this build yet: use --mode global`, 'mode');
  }
  const extra = (['blockSize', 'anchorSize', 'hosts'] as const).filter((k) => req[k] !== undefined && !(k === 'hosts' && req.hosts === 1));
  if (extra.length > 0) {
    throw new InvalidInputError('invalid_flag', `--mode global uses one host and no blocks: drop ${extra.map((k) => '--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())).join(', ')}`, extra[0]);
  }
  const engine = await ModelEngine.load(req.modelDir, req.config, { threads: req.threads ?? Math.max(1, os.availableParallelism()) });
  try {
    const r = await generateGlobal(engine, req.contextIds, req.queryIds, req.generate);
    return { ...r, mode: 'global', blockSize: null, anchorSize: null, hosts: 1 };
  } finally {
    await engine.close();
  }
}
