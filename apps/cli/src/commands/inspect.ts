/**
 * `starq inspect --model DIR`: what a checkpoint is, without loading its weights.
 */
import type { Command } from 'commander';
import { InvalidInputError } from '@starq/protocol/errors';
import { loadConfig } from '@starq/model/config';
import { openSafetensors } from '@starq/model/safetensors';
import { StarqTokenizer } from '@starq/model/tokenizer';

export function registerInspect(program: Command): void {
  program
    .command('inspect')
    .description('print architecture, parameter count, dtype, context length and tokenizer info')
    .option('--model <dir>', 'Hugging Face model directory')
    .option('--json', 'print one JSON object')
    .action((flags: { model?: string; json?: boolean }) => {
      if (!flags.model) throw new InvalidInputError('missing_flag', '--model DIR is required', 'model');
      const info = inspectModel(flags.model);
      if (flags.json) {
        process.stdout.write(JSON.stringify(info) + '\n');
        return;
      }
      const rows: [string, string][] = [
        ['architecture', info.architecture],
        ['parameters', `${info.parameters.toLocaleString('en-US')} (${info.files} file${info.files > 1 ? 's' : ''})`],
        ['dtype', info.dtypes.join(', ')],
        ['layers', String(info.layers)],
        ['hidden / intermediate', `${info.hiddenSize} / ${info.intermediateSize}`],
        ['heads / kv heads / head dim', `${info.heads} / ${info.kvHeads} / ${info.headDim}`],
        ['vocab', String(info.vocabSize)],
        ['context length', String(info.contextLength) + (info.slidingWindow ? ` (sliding window ${info.slidingWindow})` : '')],
        ['rope', `theta ${info.ropeTheta}, scaling ${info.ropeScaling}`],
        ['tied embeddings', String(info.tiedEmbeddings)],
        ['tokenizer', `vocab ${info.tokenizer.vocabSize}, bos ${info.tokenizer.bos}, eos [${info.tokenizer.eos.join(', ')}], chat template ${info.tokenizer.chatTemplate ? 'yes' : 'no'}`],
      ];
      const w = Math.max(...rows.map((r) => r[0].length));
      for (const [k, v] of rows) process.stdout.write(`${k.padEnd(w)}  ${v}\n`);
    });
}

export function inspectModel(dir: string) {
  const config = loadConfig(dir);
  const st = openSafetensors(dir);
  let parameters = 0;
  const dtypes = new Set<string>();
  try {
    for (const name of st.names()) {
      const info = st.info(name);
      parameters += info.shape.reduce((a, b) => a * b, 1);
      dtypes.add(info.dtype);
    }
  } finally {
    st.close();
  }
  const tok = StarqTokenizer.load(dir);
  return {
    architecture: config.architecture,
    parameters,
    files: st.files.length,
    dtypes: [...dtypes],
    layers: config.numLayers,
    hiddenSize: config.hiddenSize,
    intermediateSize: config.intermediateSize,
    heads: config.numHeads,
    kvHeads: config.numKvHeads,
    headDim: config.headDim,
    vocabSize: config.vocabSize,
    contextLength: config.maxPositionEmbeddings,
    slidingWindow: config.slidingWindow,
    ropeTheta: config.ropeTheta,
    ropeScaling: config.ropeScaling.type,
    tiedEmbeddings: config.tieWordEmbeddings,
    tokenizer: { vocabSize: tok.vocabSize, bos: tok.bosTokenId, eos: tok.eosTokenIds, chatTemplate: tok.hasChatTemplate },
  };
}
