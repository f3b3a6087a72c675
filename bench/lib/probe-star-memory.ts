/**
 * Probe: one Star host's process memory while it encodes blocks (bench shape, b = a = --block):
 * after each block, RSS and its high-water mark against the KV bytes it holds (blocks + the
 * anchor once). What RSS holds beyond KV is the engine (weights, ORT sessions and their arenas,
 * the worker's heap); whether that stays flat as blocks accumulate is what decides the memory of
 * a 1M-token context.
 *
 *   npx tsx bench/lib/probe-star-memory.ts [--block 16384] [--blocks 4] [--threads 1] [--max-rows 2048]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { blockCacheId, phase1Positions, phase1Tokens, planStar } from '@starq/attention';
import { loadConfig, ModelEngine } from '@starq/model';
import { LocalHost } from '@starq/model/local/local-host';
import { peakRssBytes, resetPeakRss, rssBytes } from '@starq/model/perf/peak-rss';
import { writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { randomTokenIds } from '@starq/model/synthetic/token-ids';
import { textTable } from '@starq/report';
import { arg } from './args';

const mb = (b: number) => b / 2 ** 20;

async function main(): Promise<void> {
  const b = arg('--block', 16384);
  const K = arg('--blocks', 4);
  const threads = arg('--threads', 1);
  const N = b * K;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'starq-probe-'));
  try {
    writeRandomCheckpoint(dir, { architecture: 'llama', hidden: 256, intermediate: 688, layers: 4, heads: 8, kvHeads: 2, vocab: 512, maxPositions: N + 1024, dtype: 'F32', tied: false, sharded: false, seed: 1 });
    const config = loadConfig(dir);
    const rows: Record<string, number | string>[] = [];
    const start = rssBytes();
    const maxRowsPerCall = arg('--max-rows', 2048);
    const engine = await ModelEngine.load(dir, config, { threads, maxRowsPerCall });
    const host = new LocalHost('probe', engine);
    const base = rssBytes();
    rows.push({ step: 'engine loaded', kv: 0, rss: mb(base), hwm: mb(peakRssBytes()), extra: mb(base - start) });
    const plan = planStar({ contextLength: N, blockSize: b, anchorSize: b, hosts: 1 });
    const ids = randomTokenIds(N, config.vocabSize, 1, 3);
    let kv = 0;
    resetPeakRss();
    for (const blk of plan.blocks) {
      const t0 = performance.now();
      const c0 = process.cpuUsage();
      const h = await host.encodeBlock({ cacheId: blockCacheId('probe', blk.index), ids: Int32Array.from(phase1Tokens(ids, blk.phase1)), positions: phase1Positions(blk.phase1), keepFrom: blk.phase1.keepFrom });
      kv += h.bytes;
      const held = kv + host.anchorBytes;
      const rss = rssBytes();
      rows.push({ step: `block ${blk.index + 1}/${K}`, kv: mb(held), rss: mb(rss), hwm: mb(peakRssBytes()), extra: mb(rss - start - held), s: (performance.now() - t0) / 1000, cpu: ((c) => (c.user + c.system) / 1e6)(process.cpuUsage(c0)) });
      process.stderr.write(`[probe] block ${blk.index + 1}/${K}: KV ${mb(held).toFixed(0)} MB, RSS ${mb(rss).toFixed(0)} MB\n`);
    }
    process.stdout.write(
      `one host, b = a = ${b}, ${threads} thread(s); MB; "beyond KV" = RSS − RSS before the engine − KV held\n\n` +
        textTable(
          [
            { key: 'step', title: 'after', align: 'left' },
            { key: 'kv', title: 'KV held' },
            { key: 'rss', title: 'RSS' },
            { key: 'hwm', title: 'peak RSS' },
            { key: 'extra', title: 'beyond KV' },
            { key: 's', title: 'encode s', digits: 1 },
            { key: 'cpu', title: 'CPU s', digits: 1 },
          ],
          rows,
        ) +
        '\n',
    );
    await engine.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
