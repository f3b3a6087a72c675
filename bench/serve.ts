/**
 * Serving benchmark: many requests at once through Star phase 2 — batched steps with batched
 * attention, batched steps with per-request attention, unbatched — on a process cluster and
 * in-process, alternated in one run, plus the step time against the batch size. The same
 * implementation as `starq bench serve` (libs/cluster/src/serve-bench: what is measured and how),
 * with the same flags:
 *
 *   npx tsx bench/serve.ts [--concurrency 1,2,4,8,16] [--context 4096] [--query-tokens 16]
 *     [--new-tokens 128] [--step-tokens 32] [--hosts 2] [--random-model hidden=256,layers=4,heads=8,kv-heads=2]
 *     [--variants batched,batched-attn-per-request,unbatched] [--settings cluster,in-process]
 *     [--rounds 3] [--redis URL] [--json FILE] [--markdown]
 */
import fs from 'node:fs';
import { parseServeBenchFlags, type ServeBenchFlags } from '@starq/cluster/serve-bench/options';
import { runServeBench } from '@starq/cluster/serve-bench/run';
import { formatServeReport } from '@starq/cluster/serve-bench/format';
import { machineInfo, markdownTable, textTable, type Cell, type Column } from '@starq/report';

const FLAGS: Record<string, keyof ServeBenchFlags> = {
  '--concurrency': 'concurrency',
  '--context': 'context',
  '--query-tokens': 'queryTokens',
  '--new-tokens': 'newTokens',
  '--step-tokens': 'stepTokens',
  '--hosts': 'hosts',
  '--random-model': 'randomModel',
  '--variants': 'variants',
  '--settings': 'settings',
  '--rounds': 'rounds',
  '--redis': 'redis',
};

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const flags: ServeBenchFlags = {};
  let json: string | null = null;
  let markdown = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--markdown') markdown = true;
    else if (a === '--json') json = argv[++i];
    else if (FLAGS[a] && argv[i + 1] !== undefined) flags[FLAGS[a]] = argv[++i];
    else throw new Error(`unknown or incomplete flag ${a} (see the usage at the top of bench/serve.ts)`);
  }
  const report = await runServeBench(parseServeBenchFlags(flags), (line) => process.stderr.write(line));
  const render = markdown ? markdownTable : textTable;
  process.stdout.write(formatServeReport(report, (cols, rows) => render(cols as Column[], rows as Record<string, Cell>[])));
  if (json) fs.writeFileSync(json, JSON.stringify({ ...report, machine: machineInfo(), command: `npx tsx bench/serve.ts ${argv.join(' ')}` }, null, 2) + '\n');
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.exit(1);
  },
);
