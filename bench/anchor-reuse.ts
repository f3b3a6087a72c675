/**
 * Star phase 1 on one host with the anchor encoded once (`LocalHost` default) vs recomputed with
 * every block (`shareAnchors: false`, anchor ++ block per block as in the paper): wall time of
 * `starPhase1`, the two runs alternating (order swapped every round), against the FLOP-predicted
 * ratio (libs/model/src/perf/flops.ts, `phase1Flops` with and without `anchorPerBlock`). Also the
 * process's CPU seconds (user + system, all threads; ORT does not spin): on a loaded machine the
 * work done is steadier than the wall time.
 *
 *   npx tsx bench/anchor-reuse.ts [--model-dir ../shared/models/bench-256] [--contexts 16384]
 *     [--blocks 2048,1024] [--threads 2] [--rounds 2] [--json FILE]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { planStar, starPhase1, blockCacheId } from '@starq/attention';
import { loadConfig, ModelEngine } from '@starq/model';
import { LocalHost } from '@starq/model/local/local-host';
import { phase1Flops } from '@starq/model/perf/flops';
import { sharedModel } from '@starq/model/shared-fixtures';
import { markdownTable, type Column } from '@starq/report';
import { arg, argStr } from './lib/args';

async function main(): Promise<void> {
  const modelDir = path.resolve(argStr('--model-dir', sharedModel('bench-256').path));
  const contexts = argStr('--contexts', '16384').split(',').map(Number);
  const blocks = argStr('--blocks', '2048,1024').split(',').map(Number);
  const threads = arg('--threads', 2);
  const rounds = arg('--rounds', 2);
  const jsonOut = argStr('--json', '');
  const config = loadConfig(modelDir);
  const engine = await ModelEngine.load(modelDir, config, { threads });
  const hosts = { shared: new LocalHost('shared', engine), perBlock: new LocalHost('per-block', engine, { shareAnchors: false }) };
  const loadBefore = os.loadavg()[0];
  const rows: Record<string, number | string>[] = [];
  let seq = 0;
  for (const N of contexts) {
    const ids = Array.from({ length: N }, (_, i) => 3 + ((i * 7919 + 13) % (config.vocabSize - 3)));
    for (const b of blocks) {
      const plan = planStar({ contextLength: N, blockSize: b, anchorSize: b, hosts: 1 });
      const run = async (h: LocalHost): Promise<{ ms: number; cpuS: number }> => {
        const key = `anchor-bench-${++seq}`;
        const c0 = process.cpuUsage();
        const t0 = performance.now();
        await starPhase1(plan, ids, [h], key);
        const ms = performance.now() - t0;
        const c = process.cpuUsage(c0);
        await h.release(plan.blocks.map((blk) => blockCacheId(key, blk.index)));
        return { ms, cpuS: (c.user + c.system) / 1e6 };
      };
      for (let r = 0; r < rounds; r++) {
        const order = r % 2 === 0 ? (['shared', 'perBlock'] as const) : (['perBlock', 'shared'] as const);
        const t: Record<string, number> = {};
        const cpu: Record<string, number> = {};
        for (const which of order) ({ ms: t[which], cpuS: cpu[which] } = await run(hosts[which]));
        const predicted = phase1Flops(config, 'star', plan, { anchorPerBlock: true }).total / phase1Flops(config, 'star', plan).total;
        rows.push({ N, b, blocks: plan.numBlocks, round: r + 1, sharedS: t.shared / 1000, perBlockS: t.perBlock / 1000, measured: t.perBlock / t.shared, sharedCpu: cpu.shared, perBlockCpu: cpu.perBlock, measuredCpu: cpu.perBlock / cpu.shared, predicted });
        process.stderr.write(`[anchor-reuse] N=${N} b=${b} round ${r + 1}: once per host ${(t.shared / 1000).toFixed(2)} s, per block ${(t.perBlock / 1000).toFixed(2)} s\n`);
      }
    }
  }
  const loadAfter = os.loadavg()[0];
  const columns: Column[] = [
    { key: 'N', title: 'N' },
    { key: 'b', title: 'b = a' },
    { key: 'blocks', title: 'blocks' },
    { key: 'round', title: 'round' },
    { key: 'sharedS', title: 'phase 1 s, anchor once', digits: 2 },
    { key: 'perBlockS', title: 'phase 1 s, anchor per block', digits: 2 },
    { key: 'measured', title: 'measured × (wall)', digits: 2 },
    { key: 'sharedCpu', title: 'CPU s, anchor once', digits: 1 },
    { key: 'perBlockCpu', title: 'CPU s, anchor per block', digits: 1 },
    { key: 'measuredCpu', title: 'measured × (CPU)', digits: 2 },
    { key: 'predicted', title: 'FLOP-predicted ×', digits: 2 },
  ];
  process.stdout.write(`bench-256, 1 host, ${threads} threads; 1-min load average ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after (${os.cpus().length} CPUs)\n\n${markdownTable(columns, rows)}\n`);
  if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({ command: `npx tsx bench/anchor-reuse.ts ${process.argv.slice(2).join(' ')}`, threads, loadAverage: { before: loadBefore, after: loadAfter }, rows }, null, 2));
  await engine.close();
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
