/**
 * `starq eval ruler`: RULER-style accuracy (needle retrieval, variable tracking, common words) of
 * Global and Star Attention on seeded prompts of given token lengths. Tasks and generation:
 * ../ruler/tasks.ts; scoring: ../ruler/scoring.ts; flags: ../ruler/options.ts. Results on stdout
 * (a table, or one JSON object with bare `--json` / `--json -`; `--json FILE` writes the object to
 * FILE and keeps the table on stdout), progress on stderr.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { InvalidInputError } from '@starq/protocol/errors';
import { loadConfig } from '@starq/model/config';
import { positionLimit } from '@starq/model/positions';
import { StarqTokenizer } from '@starq/model/tokenizer';
import { intFlag, readTextFile } from '../options';
import { Progress } from '../progress';
import { type Haystack, NoiseHaystack, TextHaystack } from '../ruler/haystack';
import {
  checkLengths,
  clusterHosts,
  modeCells,
  parseAnchorSpecs,
  parseBlockSpecs,
  parseLengths,
  parseModes,
  parseTasks,
} from '../ruler/options';
import { TASKS } from '../ruler/tasks';
import { type CellInfo, runRuler } from '../ruler/runner';
import { formatRulerTable, rulerJson } from '../ruler/format';
import { evalCommand } from './eval';

/** Default `--samples`. */
export const DEFAULT_RULER_SAMPLES = 20;

interface RulerFlags {
  model?: string;
  tasks: string;
  lengths: string;
  samples: string;
  modes: string;
  blockSize: string;
  anchorSize: string;
  seed: string;
  hosts?: string;
  threads?: string;
  maxNewTokens?: string;
  haystackFile?: string;
  json?: string | boolean;
}

export function registerEvalRuler(program: Command): void {
  evalCommand(program)
    .command('ruler')
    .description(
      'RULER-style accuracy of Global vs Star Attention: seeded needle-in-a-haystack (single, multikey, multivalue, multiquery), ' +
        'variable tracking and common-words prompts of the given token lengths, greedy answers scored with string_match_all',
    )
    .option('--model <dir>', 'Hugging Face model directory')
    .option('--tasks <list>', `tasks, comma-separated: ${TASKS.join(', ')}`, TASKS.join(','))
    .option('--lengths <list>', 'prompt lengths in tokens (context + query), comma-separated', '1024')
    .option('--samples <n>', 'samples per (task, length); needle depths are spread evenly over them', String(DEFAULT_RULER_SAMPLES))
    .option('--modes <list>', 'global, star (comma-separated)', 'global,star')
    .option('--block-size <list>', 'Star block sizes: tokens or fractions of the length (e.g. 1/4,1/8,512); each is a cell', '1/4')
    .option('--anchor-size <list>', 'Star anchor sizes: tokens, fractions of the length, or "b" (= the block size)', 'b')
    .option('--seed <s>', 'generator seed (same seed = same prompts)', '0')
    .option('--hosts <n>', 'hosts per Star request (default min(4, blocks))')
    .option('--threads <n>', 'ORT threads per engine (default: CPU cores / engines)')
    .option('--max-new-tokens <n>', 'answer tokens (default per task: niah_single/multikey 10, multivalue/multiquery 40, vt 30, cwe 80)')
    .option('--haystack-file <file>', 'filler text (e.g. TinyStories; "<|endoftext|>" separators are dropped; - = stdin); default: synthetic sentences')
    .option('--json [file]', 'JSON results: bare or "-" = one object on stdout instead of the table; FILE = write it there')
    .action(async (flags: RulerFlags) => {
      await rulerCommand(flags);
    });
}

function fmtDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function cellLabel(i: CellInfo): string {
  const what = i.cell === null ? 'generating samples' : i.cell.mode === 'global' ? 'global' : `star b=${i.cell.blockSize} a=${i.cell.anchorSize}`;
  const pos = i.cell === null ? `cells ${i.index}/${i.total} done` : `cell ${i.index + 1}/${i.total}`;
  const eta = i.etaMs !== null ? `, run ETA ${fmtDuration(i.etaMs)}` : '';
  return `[ruler ${pos}${eta}] ${i.task} L=${i.length} ${what}`;
}

async function rulerCommand(f: RulerFlags): Promise<void> {
  if (f.model === undefined) throw new InvalidInputError('missing_flag', '--model DIR is required', 'model');
  const tasks = parseTasks(f.tasks);
  const lengths = parseLengths(f.lengths);
  const modes = parseModes(f.modes);
  const blocks = parseBlockSpecs(f.blockSize);
  const anchors = parseAnchorSpecs(f.anchorSize);
  const samples = intFlag(f.samples, 'samples', 1)!;
  const seed = intFlag(f.seed, 'seed', 0)!;
  const hosts = intFlag(f.hosts, 'hosts', 1);
  const threads = intFlag(f.threads, 'threads', 1);
  const maxNewTokens = intFlag(f.maxNewTokens, 'max-new-tokens', 1);
  const jsonTarget: string | null = typeof f.json === 'string' ? f.json : f.json ? '-' : null;
  if (jsonTarget !== null && jsonTarget !== '-' && !fs.existsSync(path.dirname(path.resolve(jsonTarget)))) {
    throw new InvalidInputError('invalid_flag', `--json ${jsonTarget}: directory ${path.dirname(path.resolve(jsonTarget))} does not exist`, 'json');
  }
  if (!fs.existsSync(f.model)) throw new InvalidInputError('model_not_found', `model directory ${f.model} does not exist`, 'model');
  const config = loadConfig(f.model);
  checkLengths(tasks, lengths, positionLimit(config), maxNewTokens);
  const cells = lengths.map((L) => modeCells(modes, blocks, anchors, L));
  clusterHosts(cells, lengths, hosts); // bad plans fail before the tokenizer and haystack load
  const tokenizer = StarqTokenizer.load(f.model);
  const haystack: Haystack = f.haystackFile !== undefined ? new TextHaystack(readTextFile(f.haystackFile, 'haystack-file'), `file:${f.haystackFile}`) : new NoiseHaystack();

  let progress: Progress | null = null;
  const result = await runRuler({
    modelDir: f.model,
    config,
    tokenizer,
    haystack,
    tasks,
    lengths,
    cells,
    samples,
    seed,
    hosts,
    threads,
    maxNewTokens,
    onCell: (info) => {
      progress?.done();
      progress = new Progress(process.stderr, cellLabel(info));
    },
    onProgress: (done, total) => progress?.update(done, total),
  });
  (progress as Progress | null)?.done();
  const info = { model: f.model, haystack: haystack.name, seed, samples };
  const json = JSON.stringify(rulerJson(result, info));
  if (jsonTarget === '-') process.stdout.write(json + '\n');
  else {
    if (jsonTarget !== null) fs.writeFileSync(jsonTarget, json + '\n');
    process.stdout.write(formatRulerTable(result, info));
  }
  process.stderr.write(
    `[ruler] ${tasks.length} task${tasks.length > 1 ? 's' : ''} × ${lengths.length} length${lengths.length > 1 ? 's' : ''}, ${result.results.length} cells × ${samples} samples on ${result.hosts} host${result.hosts > 1 ? 's' : ''} in ${fmtDuration(result.elapsedMs)}` +
      `${jsonTarget !== null && jsonTarget !== '-' ? `; JSON written to ${jsonTarget}` : ''}\n`,
  );
}
