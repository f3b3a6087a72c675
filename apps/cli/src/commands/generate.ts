/**
 * `starq generate` (docs/DESIGN.md §10): one generation, in-process hosts (or a running cluster
 * with --redis). The position budget is checked before any engine starts; every engine is closed
 * before the command returns (see ../interrupt.ts).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { InvalidInputError } from '@starq/protocol/errors';
import { loadConfig } from '@starq/model/config';
import { checkPositions } from '@starq/model/positions';
import { generationReport, type GenerationReport } from '@starq/model/generation-report';
import { resolvePrompt } from '@starq/model/prompt';
import { StarqTokenizer } from '@starq/model/tokenizer';
import { validateSamplingParams } from '@starq/model/sampling';
import { floatFlag, intFlag } from '../options';
import { addInputFlags, readInputFlags, type InputFlags } from '../input-flags';
import { defaultPrefix, envHelp, PREFIX_HELP, PREFIX_VAR } from '../cluster-flags';
import { Progress } from '../progress';
import { MODES, type Mode } from '@starq/attention';
import { runLocal, type LocalRunResult } from '../local-runner';
import type { GenerateOptions } from '@starq/model/generate';
import { runOnCluster } from '../cluster-runner';

interface GenerateFlags extends InputFlags {
  model?: string;
  mode: string;
  blockSize?: string;
  anchorSize?: string;
  hosts?: string;
  maxNewTokens: string;
  temperature: string;
  topP: string;
  topK: string;
  seed: string;
  ignoreEos?: boolean;
  redis?: string;
  prefix?: string;
  threads?: string;
  json?: boolean;
}

export function registerGenerate(program: Command): void {
  const cmd = program
    .command('generate')
    .description('generate tokens for a prompt, or for a long context plus a query')
    .option('--model <dir>', 'Hugging Face model directory (without tokenizer.json: ids in, ids out)');
  addInputFlags(cmd)
    .option('--mode <mode>', 'star | global | ring', 'star')
    .option('--block-size <n>', 'context block size (default ⌈N/4⌉)')
    .option('--anchor-size <n>', 'anchor size (default = block size)')
    .option('--hosts <n>', 'number of hosts (default min(4, blocks))')
    .option('--max-new-tokens <n>', 'tokens to generate', '32')
    .option('--temperature <t>', 'sampling temperature (0 = greedy)', '0')
    .option('--top-p <p>', 'nucleus sampling mass', '1')
    .option('--top-k <k>', 'top-k sampling (0 = off)', '0')
    .option('--seed <s>', 'sampling seed', '0')
    .option('--ignore-eos', 'do not stop at end-of-sequence tokens')
    .option('--threads <n>', 'ORT threads per engine (default: CPU cores / engines)')
    .option('--redis <url>', 'run on a running cluster (e.g. redis://127.0.0.1:6379) instead of in-process hosts')
    .option('--prefix <p>', `${PREFIX_HELP}; with --redis`)
    .option('--json', 'print exactly one JSON object on stdout')
    .action(async (flags: GenerateFlags) => {
      await generateCommand(flags);
    });
  envHelp(cmd, [PREFIX_VAR]);
}

async function generateCommand(f: GenerateFlags): Promise<void> {
  if (!f.model) throw new InvalidInputError('missing_flag', '--model DIR is required', 'model');
  if (!(MODES as readonly string[]).includes(f.mode)) {
    throw new InvalidInputError('invalid_mode', `--mode must be one of ${MODES.join(', ')}, got "${f.mode}"`, 'mode');
  }
  if (f.prefix !== undefined && f.redis === undefined) {
    throw new InvalidInputError('invalid_flag', '--prefix names a running cluster\'s keys: give it together with --redis URL', 'prefix');
  }
  if (!fs.existsSync(f.model)) throw new InvalidInputError('model_not_found', `model directory ${f.model} does not exist`, 'model');
  const config = loadConfig(f.model);
  // A checkpoint without tokenizer.json still runs on token ids (text output is then null).
  const tokenizer = fs.existsSync(path.join(f.model, 'tokenizer.json')) ? StarqTokenizer.load(f.model) : null;
  const input = readInputFlags(f);
  const { contextIds, queryIds } = resolvePrompt(input, tokenizer, config.vocabSize);
  const maxNewTokens = intFlag(f.maxNewTokens, 'max-new-tokens')!;
  checkPositions({ contextTokens: contextIds.length, queryTokens: queryIds.length, maxNewTokens }, config, {
    context: input.contextIds !== undefined ? 'context-ids' : input.prompt !== undefined ? 'prompt' : 'context',
    maxNewTokens: 'max-new-tokens',
  });
  const sampling = {
    temperature: floatFlag(f.temperature, 'temperature')!,
    topP: floatFlag(f.topP, 'top-p')!,
    topK: intFlag(f.topK, 'top-k')!,
    seed: intFlag(f.seed, 'seed')!,
  };
  validateSamplingParams(sampling);
  const progress = new Progress(process.stderr, 'phase 1');
  let streamed = '';
  const allIds: number[] = [];
  const common = {
    modelDir: f.model,
    contextIds,
    queryIds,
    mode: f.mode as Mode,
    blockSize: intFlag(f.blockSize, 'block-size', 1),
    anchorSize: intFlag(f.anchorSize, 'anchor-size', 0),
    hosts: intFlag(f.hosts, 'hosts', 1),
  };
  const decode = (ids: number[]): string | null => (tokenizer ? tokenizer.decode(ids, { skipSpecialTokens: false }) : null);
  const generate: GenerateOptions = {
    maxNewTokens,
    sampling,
    stopIds: tokenizer ? tokenizer.eosTokenIds : config.eosTokenIds,
    ignoreEos: !!f.ignoreEos,
    onProgress: (done, total) => progress.update(done, total),
    onToken: (id) => {
      progress.done();
      if (f.json) return;
      allIds.push(id);
      // Without a tokenizer the ids are the output: one per token, space-separated.
      const text = decode(allIds) ?? `${allIds.length > 1 ? ' ' : ''}${id}`;
      const delta = tokenizer ? safeDelta(text, streamed.length) : text;
      streamed += delta;
      process.stdout.write(delta);
    },
  };
  const result = f.redis
    ? await runOnCluster({ ...common, redisUrl: f.redis, prefix: f.prefix ?? defaultPrefix(), generate })
    : fromLocal(await runLocal({ ...common, config, threads: intFlag(f.threads, 'threads', 1), generate }), contextIds.length, queryIds.length);
  progress.done();
  const text = decode(result.generatedIds);
  if (f.json) {
    process.stdout.write(JSON.stringify(generationReport(result, text)) + '\n');
  } else {
    if (text !== null && text.length > streamed.length && text.startsWith(streamed)) process.stdout.write(text.slice(streamed.length));
    process.stdout.write('\n');
    const t = result.timings;
    process.stderr.write(
      `[${result.mode}] context ${contextIds.length} + query ${queryIds.length} tokens, ${result.generatedIds.length} generated (${result.finishReason}); ` +
        `phase 1 ${t.phase1Ms.toFixed(1)} ms, first token ${t.firstTokenMs.toFixed(1)} ms, ${t.decodeTokensPerSec.toFixed(1)} tok/s\n`,
    );
  }
}

/** The report's fields (without text) of an in-process run. */
function fromLocal(r: LocalRunResult, contextTokens: number, queryTokens: number): Omit<GenerationReport, 'text'> {
  return { ...r, contextTokens, queryTokens, blockSize: r.plan.blockSize, anchorSize: r.plan.anchorSize, hosts: r.plan.effectiveHosts };
}

/** New text since `emitted` chars, holding back a trailing incomplete UTF-8 sequence (U+FFFD). */
function safeDelta(text: string, emitted: number): string {
  let end = text.length;
  while (end > emitted && text.charCodeAt(end - 1) === 0xfffd) end--;
  return end > emitted ? text.slice(emitted, end) : '';
}
