/**
 * `starq eval fidelity`: teacher-forced Star vs Global on real text — mean KL(global‖star), top-1
 * agreement and NLL per (block size, anchor size) cell. Windows, metrics and semantics are
 * documented in ../fidelity.ts; results on stdout (table, or one JSON object with --json),
 * progress on stderr.
 */
import fs from 'node:fs';
import type { Command } from 'commander';
import { InvalidInputError } from '@starq/protocol/errors';
import { loadConfig } from '@starq/model/config';
import { StarqTokenizer } from '@starq/model/tokenizer';
import { intFlag, readTextFile } from '../options';
import { Progress } from '../progress';
import {
  DEFAULT_ANCHORS,
  DEFAULT_SAMPLES,
  checkWindowFits,
  cutWindows,
  encodeText,
  fidelityCells,
  fidelityJson,
  formatFidelityTable,
  parseAnchorSizes,
  parseBlockSizes,
  runFidelity,
} from '../fidelity';
import { evalCommand } from './eval';

interface FidelityFlags {
  model?: string;
  textFile?: string;
  contextTokens?: string;
  queryTokens?: string;
  blockSize?: string;
  anchorSize: string;
  samples: string;
  docSeparator?: string;
  hosts?: string;
  threads?: string;
  json?: boolean;
}

export function registerEvalFidelity(program: Command): void {
  evalCommand(program)
    .command('fidelity')
    .description(
      'teacher-forced Star (and no-anchor Star) vs Global on real text: mean KL(global‖star), top-1 agreement and NLL ' +
        'over the query positions of evenly spaced windows (BOS first when the tokenizer adds it)',
    )
    .option('--model <dir>', 'Hugging Face model directory')
    .option('--text-file <file>', 'text to cut windows from (encoded once, without special tokens; - = stdin)')
    .option('--context-tokens <n>', 'N: context tokens per window (BOS + N−1 text tokens when the tokenizer adds BOS)')
    .option('--query-tokens <m>', 'M: query tokens per window (each row predicts the next window token)')
    .option('--block-size <list>', 'block sizes, comma-separated (e.g. 64,112,224); ≥ N equals Global')
    .option('--anchor-size <list>', 'anchor sizes, comma-separated; "b" = the block size', DEFAULT_ANCHORS)
    .option('--samples <s>', 'number of windows', String(DEFAULT_SAMPLES))
    .option('--doc-separator <str>', 'split the text into documents on this string and encode it as [BOS] doc [BOS] doc … (e.g. "<|endoftext|>")')
    .option('--hosts <n>', 'hosts per Star request (default min(4, blocks))')
    .option('--threads <n>', 'ORT threads per engine (default: CPU cores / engines)')
    .option('--json', 'print exactly one JSON object on stdout')
    .action(async (flags: FidelityFlags) => {
      await fidelityCommand(flags);
    });
}

function required(value: string | undefined, flag: string, what: string): string {
  if (value === undefined) throw new InvalidInputError('missing_flag', `--${flag} ${what} is required`, flag);
  return value;
}

async function fidelityCommand(f: FidelityFlags): Promise<void> {
  const model = required(f.model, 'model', 'DIR');
  const textFile = required(f.textFile, 'text-file', 'FILE');
  const N = intFlag(required(f.contextTokens, 'context-tokens', 'N'), 'context-tokens', 1)!;
  const M = intFlag(required(f.queryTokens, 'query-tokens', 'M'), 'query-tokens', 1)!;
  const blockSizes = parseBlockSizes(required(f.blockSize, 'block-size', 'B[,B…]'));
  const cells = fidelityCells(blockSizes, parseAnchorSizes(f.anchorSize));
  const samples = intFlag(f.samples, 'samples', 1)!;
  const hosts = intFlag(f.hosts, 'hosts', 1);
  const threads = intFlag(f.threads, 'threads', 1);
  if (f.docSeparator === '') throw new InvalidInputError('invalid_flag', '--doc-separator must not be empty', 'doc-separator');
  if (!fs.existsSync(model)) throw new InvalidInputError('model_not_found', `model directory ${model} does not exist`, 'model');
  const config = loadConfig(model);
  checkWindowFits(config, N, M);
  const text = readTextFile(textFile, 'text-file');
  const tokenizer = StarqTokenizer.load(model);
  const bosId = tokenizer.addsBosToken ? tokenizer.bosTokenId : null;
  const tTok = performance.now();
  // Encoding a large file takes seconds: say so on a terminal (logs get the time in the summary, and
  // a bad-input error stays the only stderr line).
  if (process.stderr.isTTY) process.stderr.write(`[fidelity] tokenizing ${text.length.toLocaleString('en-US')} characters of ${textFile}…\n`);
  // Special-token strings in the text (`<s>`, …) stay plain text: BOS is only what we put in.
  const textIds = encodeText(tokenizer, text, bosId, f.docSeparator);
  const tokenizeMs = performance.now() - tTok;
  const windows = cutWindows(textIds, { contextTokens: N, queryTokens: M, samples, bosId });

  const progress = new Progress(process.stderr, 'fidelity');
  const result = await runFidelity({
    modelDir: model,
    config,
    windows,
    contextTokens: N,
    queryTokens: M,
    cells,
    hosts,
    threads,
    onProgress: (done, total) => progress.update(done, total),
  });
  progress.done();
  if (f.json) {
    process.stdout.write(JSON.stringify(fidelityJson(result, model)) + '\n');
  } else {
    process.stdout.write(formatFidelityTable(result, model));
  }
  process.stderr.write(
    `[fidelity] ${windows.length} window${windows.length > 1 ? 's' : ''} × ${cells.length} cell${cells.length > 1 ? 's' : ''} on ${result.hosts} host${result.hosts > 1 ? 's' : ''}, ` +
      `${textIds.length} text tokens (tokenized in ${(tokenizeMs / 1000).toFixed(1)} s)${bosId !== null ? ', BOS first in each window' : ''}; ` +
      `evaluation ${(result.elapsedMs / 1000).toFixed(1)} s\n`,
  );
}
