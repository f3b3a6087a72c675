/**
 * `starq generate` (docs/DESIGN.md §10): one generation, in-process hosts (or a cluster with --redis).
 */
import fs from 'node:fs';
import type { Command } from 'commander';
import { InvalidInputError } from '@starq/protocol/errors';
import { loadConfig } from '@starq/model/config';
import { resolvePrompt, type PromptInput } from '@starq/model/prompt';
import { StarqTokenizer } from '@starq/model/tokenizer';
import { validateSamplingParams } from '@starq/model/sampling';
import { floatFlag, idsFlag, intFlag, readTextFile } from '../options';
import { Progress } from '../progress';
import { MODES, type Mode } from '@starq/attention';
import { runLocal, type LocalRunResult } from '../local-runner';
import type { GenerateOptions } from '@starq/model/generate';
import { runOnCluster } from '../cluster-runner';

interface GenerateFlags {
  model?: string;
  prompt?: string;
  promptFile?: string;
  context?: string;
  contextFile?: string;
  query?: string;
  queryFile?: string;
  contextIds?: string;
  queryIds?: string;
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
  threads?: string;
  json?: boolean;
}

export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description('generate tokens for a prompt, or for a long context plus a query')
    .option('--model <dir>', 'Hugging Face model directory')
    .option('--prompt <text>', 'prompt text (its last token is the query)')
    .option('--prompt-file <file>', 'read the prompt from a file')
    .option('--context <text>', 'context text (BOS added when the tokenizer adds it)')
    .option('--context-file <file>', 'read the context from a file')
    .option('--query <text>', 'query text (no special tokens added)')
    .option('--query-file <file>', 'read the query from a file')
    .option('--context-ids <ids>', 'context token ids, comma-separated, used verbatim')
    .option('--query-ids <ids>', 'query token ids, comma-separated, used verbatim')
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
    .option('--redis <url>', 'run on a running cluster instead of in-process hosts')
    .option('--json', 'print exactly one JSON object on stdout')
    .action(async (flags: GenerateFlags) => {
      await generateCommand(flags);
    });
}

async function generateCommand(f: GenerateFlags): Promise<void> {
  if (!f.model) throw new InvalidInputError('missing_flag', '--model DIR is required', 'model');
  if (!(MODES as readonly string[]).includes(f.mode)) {
    throw new InvalidInputError('invalid_mode', `--mode must be one of ${MODES.join(', ')}, got "${f.mode}"`, 'mode');
  }
  if (!fs.existsSync(f.model)) throw new InvalidInputError('model_not_found', `model directory ${f.model} does not exist`, 'model');
  const config = loadConfig(f.model);
  const tokenizer = StarqTokenizer.load(f.model);
  const input: PromptInput = {
    prompt: f.prompt ?? (f.promptFile !== undefined ? readTextFile(f.promptFile, 'prompt-file') : undefined),
    context: f.context ?? (f.contextFile !== undefined ? readTextFile(f.contextFile, 'context-file') : undefined),
    query: f.query ?? (f.queryFile !== undefined ? readTextFile(f.queryFile, 'query-file') : undefined),
    contextIds: idsFlag(f.contextIds, 'context-ids'),
    queryIds: idsFlag(f.queryIds, 'query-ids'),
  };
  const { contextIds, queryIds } = resolvePrompt(input, tokenizer, config.vocabSize);
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
  const generate: GenerateOptions = {
      maxNewTokens: intFlag(f.maxNewTokens, 'max-new-tokens')!,
      sampling,
      stopIds: tokenizer.eosTokenIds,
      ignoreEos: !!f.ignoreEos,
      onProgress: (done, total) => progress.update(done, total),
      onToken: (id) => {
        progress.done();
        if (f.json) return;
        allIds.push(id);
        const text = tokenizer.decode(allIds, { skipSpecialTokens: false });
        const delta = safeDelta(text, streamed.length);
        streamed += delta;
        process.stdout.write(delta);
      },
  };
  const result = f.redis
    ? toResult(await runOnCluster({ ...common, redisUrl: f.redis, prefix: process.env.STARQ_PREFIX || 'starq', generate }))
    : fromLocal(await runLocal({ ...common, config, threads: intFlag(f.threads, 'threads', 1), generate }));
  progress.done();
  const text = tokenizer.decode(result.generatedIds, { skipSpecialTokens: false });
  if (f.json) {
    process.stdout.write(
      JSON.stringify({
        mode: result.mode,
        contextTokens: contextIds.length,
        queryTokens: queryIds.length,
        blockSize: result.blockSize,
        anchorSize: result.anchorSize,
        hosts: result.hosts,
        generatedIds: result.generatedIds,
        text,
        finishReason: result.finishReason,
        timings: result.timings,
      }) + '\n',
    );
  } else {
    if (text.length > streamed.length && text.startsWith(streamed)) process.stdout.write(text.slice(streamed.length));
    process.stdout.write('\n');
    const t = result.timings;
    process.stderr.write(
      `[${result.mode}] context ${contextIds.length} + query ${queryIds.length} tokens, ${result.generatedIds.length} generated (${result.finishReason}); ` +
        `phase 1 ${t.phase1Ms.toFixed(1)} ms, first token ${t.firstTokenMs.toFixed(1)} ms, ${t.decodeTokensPerSec.toFixed(1)} tok/s\n`,
    );
  }
}

interface CliResult {
  mode: Mode;
  blockSize: number;
  anchorSize: number;
  hosts: number;
  generatedIds: number[];
  finishReason: 'length' | 'stop';
  timings: { phase1Ms: number; phase2Ms: number; firstTokenMs: number; decodeTokensPerSec: number };
}

function toResult(r: CliResult): CliResult {
  return { mode: r.mode, blockSize: r.blockSize, anchorSize: r.anchorSize, hosts: r.hosts, generatedIds: r.generatedIds, finishReason: r.finishReason, timings: r.timings };
}

function fromLocal(r: LocalRunResult): CliResult {
  return toResult({ ...r, blockSize: r.plan.blockSize, anchorSize: r.plan.anchorSize, hosts: r.plan.effectiveHosts });
}

/** New text since `emitted` chars, holding back a trailing incomplete UTF-8 sequence (U+FFFD). */
function safeDelta(text: string, emitted: number): string {
  let end = text.length;
  while (end > emitted && text.charCodeAt(end - 1) === 0xfffd) end--;
  return end > emitted ? text.slice(emitted, end) : '';
}
