/**
 * `starq bench …`: performance instruments. `starq bench speed` measures phase-1 time, time to
 * first token, decode rate and achieved GFLOP/s of Global, Star and Ring on one model, against
 * the same-run ORT MatMul roofline (see ../bench-speed/runner.ts for every reported field).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { InvalidInputError } from '@starq/protocol/errors';
import { loadConfig } from '@starq/model/config';
import { writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { ClusterBackend, InProcessBackend, type SpeedBackend } from '../bench-speed/backends';
import { planCells } from '../bench-speed/cells';
import { parseSpeedFlags, type SpeedFlags, type SpeedOptions } from '../bench-speed/options';
import { formatSpeedTable, speedJson, speedPlots } from '../bench-speed/report';
import { runSpeed } from '../bench-speed/runner';
import { machineInfo } from '@starq/report';
import { Progress } from '../progress';

export function benchCommand(program: Command): Command {
  const existing = program.commands.find((c) => c.name() === 'bench');
  if (existing) return existing;
  const group: Command = program
    .command('bench')
    .description('performance benchmarks (see `starq bench <command> --help`)')
    .action((_opts: unknown, cmd: Command) => {
      const names = group.commands.map((c) => c.name()).join(' | ');
      const given = cmd.args[0];
      if (given !== undefined) throw new InvalidInputError('unknown_command', `unknown bench command "${given}": use ${names} (see starq bench --help)`, 'bench');
      throw new InvalidInputError('missing_subcommand', `starq bench needs a subcommand: ${names} (see starq bench --help)`, 'bench');
    });
  return group;
}

export function registerBench(program: Command): void {
  benchCommand(program)
    .command('speed')
    .description(
      'phase-1 time, time to first token, decode tokens/s and achieved GFLOP/s of Global, Star and Ring per context length, ' +
        'with ratios to Global and Ring and the same-run ORT MatMul rate; table on stdout, progress on stderr',
    )
    .option('--model <dir>', 'Hugging Face model directory')
    .option('--random-model <spec>', 'generate a random Llama: hidden=H,layers=L,heads=Q,kv-heads=K[,intermediate=I][,vocab=V]')
    .option('--contexts <list>', 'context lengths N, comma-separated (4096 or 4K)', '4096')
    .option('--modes <list>', 'modes to run: global,star,ring', 'global,star,ring')
    .option('--block-sizes <list>', 'Star block sizes: tokens or fractions of N (1/4,1/8,1/16)', '1/4')
    .option('--anchor-size <a>', 'Star anchor: "b" (= block size), tokens or a fraction of N', 'b')
    .option('--hosts <list>', 'host counts for Star and Ring, comma-separated (Global always uses one host) (default: min(4, CPU cores))')
    .option('--cluster', 'run on real host and query actor processes on Redis instead of in-process hosts')
    .option('--redis <url>', 'Redis URL for --cluster (default redis://127.0.0.1:6379, or a private redis-server if none answers)')
    .option('--prefix <p>', 'Redis key prefix for --cluster (default: a random starq-bench-…); every key under it is deleted at the end')
    .option('--predict-global-from <N>', 'run Global only at context N (e.g. 64K) and predict its phase-1 time at the other contexts from FLOPs and that rate (not run; marked in the table); needs --modes without global')
    .option('--max-rows-per-call <n>', 'rows per qkv/post/head ORT call of every engine (fewer: less activation memory kept by ORT; default: the engine\'s 2048)')
    .option('--threads <n>', 'total ORT threads: one engine gets all, H host engines ⌊threads/H⌋ each (default: CPU cores)')
    .option('--query-tokens <m>', 'query tokens after the context', '16')
    .option('--new-tokens <n>', 'tokens to generate (greedy, EOS ignored)', '16')
    .option('--seed <s>', 'seed of the random context, query and model', '0')
    .option('--json [file]', 'write the results as JSON to FILE (- or no value: stdout, and the table goes to stderr)')
    .option('--plots <dir>', 'write SVG plots (phase-1 time vs context, speedup vs N/b) into DIR')
    .option('--markdown', 'print the table as Markdown')
    .action(async (flags: SpeedFlags) => {
      await speedCommand(flags);
    });
}

async function speedCommand(flags: SpeedFlags): Promise<void> {
  const o = parseSpeedFlags(flags);
  let tmpModel: string | null = null;
  let backend: SpeedBackend | null = null;
  try {
    const modelDir = prepareModel(o, (dir) => (tmpModel = dir));
    const config = loadConfig(modelDir);
    const cells = planCells(o, config);
    const log = (line: string) => process.stderr.write(line);
    backend = o.cluster
      ? new ClusterBackend(modelDir, o.threads, o.prefix ?? `starq-bench-${randomBytes(4).toString('hex')}`, o.redisUrl, o.maxRowsPerCall, (l) => log(l.split('\n').filter((x) => /error|exited/i.test(x)).map((x) => x + '\n').join('')))
      : new InProcessBackend(modelDir, config, o.threads, o.maxRowsPerCall);
    const run = cells.filter((c) => c.predictedFrom === null).length;
    const predicted = cells.length - run;
    log(`[bench] ${run} cell${run > 1 ? 's' : ''}${predicted > 0 ? ` (+ ${predicted} predicted, not run)` : ''} on ${backend.name}, ${o.threads} thread${o.threads > 1 ? 's' : ''}; measuring the MatMul roofline…\n`);
    let phase1: Progress | null = null;
    let decode: Progress | null = null;
    const result = await runSpeed({
      cells,
      backend,
      threads: o.threads,
      vocabSize: config.vocabSize,
      firstId: Math.min(3, config.vocabSize - 1),
      queryTokens: o.queryTokens,
      newTokens: o.newTokens,
      seed: o.seed,
      onCell: (i, total, c, eta) => {
        phase1?.done();
        decode?.done();
        const what = c.mode === 'global' ? '' : ` b=${c.blockSize} a=${c.anchorSize} hosts=${c.hosts}`;
        log(`[bench] cell ${i + 1}/${total}: ${c.mode} N=${c.contextTokens}${what} (${(c.phase1Flops / 1e9).toFixed(1)} GFLOP)${eta !== null ? `, ETA ${(eta / 1000).toFixed(0)} s` : ''}\n`);
        phase1 = new Progress(process.stderr, `  phase 1 ${c.mode === 'ring' ? 'layers' : c.mode === 'global' ? 'chunks' : 'blocks'}`);
        decode = null; // created at the first token, so its clock starts with phase 2
      },
      onPhase1: (done, total) => phase1?.update(done, total),
      onCellDone: (r) => {
        phase1?.done();
        decode?.done();
        const f = (v: number | null, d = 0) => (v === null ? '–' : v.toFixed(d));
        log(
          `[bench]   done: phase 1 ${f(r.phase1Ms)} ms (${f(r.gflops, 1)} GFLOP/s), TTFT ${f(r.firstTokenMs)} ms, decode ${f(r.decodeTokensPerSec, 1)} tok/s, ` +
            `peak RSS ${f(r.peakRssMb)} MB (KV ${f(r.kvMb)} MB + engines ${f(r.baseRssMb)} MB = ${f(r.expectedMb)} MB)\n`,
        );
      },
      onToken: (done, total) => {
        phase1?.done();
        decode ??= new Progress(process.stderr, '  tokens');
        decode.update(done, total);
      },
    });
    (phase1 as Progress | null)?.done();
    (decode as Progress | null)?.done();
    const table = formatSpeedTable(result, o.markdown);
    const doc = speedJson(result, { model: 'dir' in o.model ? o.model.dir : `random ${flags.randomModel}`, machine: machineInfo(), command: `starq ${process.argv.slice(2).join(' ')}` });
    if (o.json === '-') {
      process.stderr.write(table);
      process.stdout.write(JSON.stringify(doc) + '\n');
    } else {
      process.stdout.write(table);
      if (o.json) fs.writeFileSync(o.json, JSON.stringify(doc, null, 2) + '\n');
    }
    if (o.plots) {
      fs.mkdirSync(o.plots, { recursive: true });
      for (const [name, svg] of Object.entries(speedPlots(result))) fs.writeFileSync(path.join(o.plots, name), svg);
      log(`[bench] plots written to ${o.plots}\n`);
    }
  } finally {
    if (backend) await backend.close();
    if (tmpModel) fs.rmSync(tmpModel, { recursive: true, force: true });
  }
}

/** The model directory: the given one (checked), or a generated random checkpoint in a temp dir. */
function prepareModel(o: SpeedOptions, onTemp: (dir: string) => void): string {
  if ('dir' in o.model) {
    if (!fs.existsSync(path.join(o.model.dir, 'config.json'))) throw new InvalidInputError('model_not_found', `--model: ${o.model.dir} has no config.json`, 'model');
    return o.model.dir;
  }
  const r = o.model.random;
  const need = Math.max(...o.contexts, o.predictGlobalFrom ?? 0) + o.queryTokens + o.newTokens;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'starq-bench-model-'));
  onTemp(dir);
  writeRandomCheckpoint(dir, {
    architecture: 'llama',
    hidden: r.hidden,
    intermediate: r.intermediate,
    layers: r.layers,
    heads: r.heads,
    kvHeads: r.kvHeads,
    vocab: r.vocab,
    maxPositions: Math.ceil(need / 1024) * 1024,
    dtype: 'F32',
    tied: false,
    sharded: false,
    seed: o.seed + 1,
  });
  return dir;
}
