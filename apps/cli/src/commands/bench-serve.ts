/**
 * `starq bench serve`: many requests at once through Star phase 2 — batched steps with batched
 * attention, batched steps with per-request attention, unbatched — on a process cluster and
 * in-process, in the same run (libs/cluster serve-bench: the implementation bench/serve.ts shares).
 */
import fs from 'node:fs';
import type { Command } from 'commander';
import { parseServeBenchFlags, SERVE_BENCH_DEFAULTS, SERVE_SETTINGS, SERVE_VARIANTS, type ServeBenchFlags } from '@starq/cluster/serve-bench/options';
import { runServeBench } from '@starq/cluster/serve-bench/run';
import { formatServeReport } from '@starq/cluster/serve-bench/format';
import { machineInfo, markdownTable, textTable, type Cell, type Column } from '@starq/report';
import { envHelp } from '../cluster-flags';
import { benchCommand } from './bench';

interface ServeCliFlags extends ServeBenchFlags {
  json?: string | true;
  markdown?: boolean;
}

export function registerBenchServe(program: Command): void {
  const d = SERVE_BENCH_DEFAULTS;
  const cmd = benchCommand(program)
    .command('serve')
    .description(
      'aggregate tokens/s, time to first token and per-token latency (p50/p99) of C concurrent requests on C distinct pre-encoded documents, ' +
        'per phase-2 variant, alternated round by round; plus the step time against the batch size (in-process). Table on stdout, progress on stderr',
    )
    .option('--concurrency <list>', 'concurrency levels C, comma-separated', d.concurrency)
    .option('--context <n>', 'tokens per document (Star, block size ⌈n / hosts⌉)', d.context)
    .option('--query-tokens <n>', 'query tokens per request', d.queryTokens)
    .option('--new-tokens <n>', 'tokens each request generates on the cluster (greedy, EOS ignored)', d.newTokens)
    .option('--step-tokens <n>', 'tokens each request generates in the in-process setting (latencies and step times)', d.stepTokens)
    .option('--hosts <n>', 'host actors (cluster) / simulated hosts (in-process)', d.hosts)
    .option('--random-model <spec>', 'shape of the generated random Llama: hidden=H,layers=L,heads=Q,kv-heads=K', d.randomModel)
    .option('--variants <list>', `phase-2 variants: ${SERVE_VARIANTS.join(' | ')} (batched: one step for the running set and each host's attention items in shared ORT calls; batched-attn-per-request: the same steps, one attention call per item; unbatched: each request its own steps)`, d.variants)
    .option('--settings <list>', `where to run: ${SERVE_SETTINGS.join(' | ')} (cluster: 1 process per host and a query actor on Redis, one cluster per variant; in-process: LocalCluster, also gives the step-time table)`, d.settings)
    .option('--rounds <n>', 'runs of every (level, variant), alternated; the round with the highest decode tok/s is reported', d.rounds)
    .option('--redis <url>', 'Redis of the cluster setting (keys under a random prefix, deleted at the end)', 'redis://127.0.0.1:6379')
    .option('--json [file]', 'write the results as JSON to FILE (- or no value: stdout, and the table goes to stderr)')
    .option('--markdown', 'print the tables as Markdown')
    .action(async (flags: ServeCliFlags) => {
      await serveCommand(flags);
    });
  envHelp(cmd, [['STARQ_*', 'passed on to the cluster setting\'s actors, except the variant\'s STARQ_BATCHING, STARQ_ATTEND_BATCHING and STARQ_MAX_RUNNING (see docs/DEPLOY.md)']]);
}

async function serveCommand(flags: ServeCliFlags): Promise<void> {
  const { json, markdown, ...rest } = flags;
  const o = parseServeBenchFlags(rest);
  const report = await runServeBench(o, (line) => process.stderr.write(line));
  const render = markdown ? markdownTable : textTable;
  const text = formatServeReport(report, (cols, rows) => render(cols as Column[], rows as Record<string, Cell>[]));
  const doc = { ...report, machine: machineInfo(), command: `starq ${process.argv.slice(2).join(' ')}` };
  if (json === true || json === '-') {
    process.stderr.write(text);
    process.stdout.write(JSON.stringify(doc) + '\n');
  } else {
    process.stdout.write(text);
    if (json) fs.writeFileSync(json, JSON.stringify(doc, null, 2) + '\n');
  }
}
