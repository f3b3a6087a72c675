/**
 * Probe: engine prefill time under different attention chunking options (ExecutorOptions: `pageSize`,
 * `scoreBudgetBytes`, `attention`, `keyTile`, `rowTile`, `maxRowsPerCall`).
 * Configurations are measured in interleaved rounds (best per config), so machine noise hits every
 * configuration alike; each measurement loads its own engine and closes it afterwards (an engine
 * keeps the peak activation memory of every session's arena, several GB after a 16K prefill, so
 * engines are never kept side by side). A MatMul reference is measured in every round.
 *
 *   npx tsx bench/lib/sweep-chunking.ts [--threads 2] [--n 4096] [--rounds 2]
 *        [--configs 4096:256,4096:32,1024:32,1024:8]     # pageSize:scoreBudgetMiB, or
 *        [--configs attention=paged,keyTile=1024/rowTile=512,keyTile=2048/rowTile=256]
 *                               # '/'-separated name=value pairs of ExecutorOptions
 *                               # (scoreBudgetMiB=N sets scoreBudgetBytes)
 *        [--decode 16]          # single-token steps after each prefill (ms/token, mean per round, best round)
 *        [--model-dir DIR]      # a checkpoint directory instead of the random bench model
 *        [--json FILE]
 */
import * as fs from 'node:fs';
import { loadConfig, ModelEngine, type ExecutorOptions, type ExecutorStats } from '@starq/model';
import { causalPairs, forwardFlops } from './flops';
import { writeRandomBenchModel } from './models';
import { diffCounters, procCounters, type ProcCounters } from './procstat';
import { measureMatmul } from './roofline';
import { textTable } from '@starq/report';
import { nowMs, progress } from './timing';
import { argStr } from './args';

/** One configuration: `page:mib` (legacy) or '/'-separated `name=value` ExecutorOptions. */
function parseConfig(text: string): { key: string; opts: ExecutorOptions } {
  if (/^\d+:\d+$/.test(text)) {
    const [page, mib] = text.split(':').map(Number);
    return { key: `page ${page}, budget ${mib} MiB`, opts: { pageSize: page, scoreBudgetBytes: mib * 2 ** 20 } };
  }
  const opts: Record<string, number | string | boolean> = {};
  for (const pair of text.split('/')) {
    const [name, value] = pair.split('=');
    if (!name || value === undefined) throw new Error(`config ${text}: expected name=value pairs separated by '/'`);
    if (name === 'scoreBudgetMiB') opts.scoreBudgetBytes = Number(value) * 2 ** 20;
    else opts[name] = /^\d+$/.test(value) ? Number(value) : value === 'true' ? true : value === 'false' ? false : value;
  }
  return { key: text, opts: opts as ExecutorOptions };
}

interface Row {
  config: string;
  options: ExecutorOptions;
  n: number;
  times: number[];
  bestMs: number;
  gflops: number;
  issuedOverUseful: number;
  attendCalls: number;
  /** Process counters during the best forward: minor page faults, user and system CPU ms. */
  counters: ProcCounters;
  /** Process RSS right after the prefill (the engine's arenas hold their peak). */
  rssGiB: number;
  /** Decode ms/token (mean over the steps of one round), best round; NaN without --decode. */
  decodeMsPerToken: number;
  /** max |Δ| of the last-row logits against the first configuration's. */
  maxAbsLogitDiff: number;
}

async function main(): Promise<void> {
  const threads = Number(argStr('--threads', '2'));
  const N = Number(argStr('--n', '4096'));
  const rounds = Number(argStr('--rounds', '2'));
  const decode = Number(argStr('--decode', '0'));
  const configsK = argStr('--configs', '4096:256,4096:32,1024:32,1024:8').split(',').map(parseConfig);
  const modelDir = argStr('--model-dir', '');
  const { dir, cleanup } = modelDir ? { dir: modelDir, cleanup: () => undefined } : writeRandomBenchModel(Math.max(16448, N + 64));
  try {
    const cfg = loadConfig(dir);
    const ids = Int32Array.from({ length: N }, (_, i) => 3 + ((i * 7919) % (cfg.vocabSize - 3)));
    const positions = Int32Array.from({ length: N }, (_, i) => i);
    const times = new Map<string, number[]>(configsK.map((e) => [e.key, []]));
    const stats = new Map<string, ExecutorStats>();
    const counters = new Map<string, ProcCounters[]>(configsK.map((e) => [e.key, []]));
    const rss = new Map<string, number>();
    const logits = new Map<string, Float32Array>();
    const decodeMs = new Map<string, number[]>(configsK.map((e) => [e.key, []]));
    const mm: number[] = [];
    for (let r = 0; r < rounds; r++) {
      mm.push((await measureMatmul({ m: 2048, k: 512, n: 2048 }, 'weight', { threads, reps: 3 })).gflops);
      for (const e of configsK) {
        const engine = await ModelEngine.load(dir, cfg, { threads, ...e.opts });
        try {
          await engine.forward({ cacheId: 'w', ids: ids.subarray(0, 16), positions: positions.subarray(0, 16), logits: 'last' });
          await engine.dropCache('w');
          const s0 = await engine.stats();
          const c0 = procCounters();
          const t0 = nowMs();
          const out = await engine.forward({ cacheId: 'c', ids, positions, logits: 'last', reserve: N + decode });
          const dt = nowMs() - t0;
          if (out) logits.set(e.key, out);
          counters.get(e.key)!.push(diffCounters(c0, procCounters()));
          const s1 = await engine.stats();
          rss.set(e.key, Math.max(rss.get(e.key) ?? 0, process.memoryUsage().rss));
          times.get(e.key)!.push(dt);
          if (decode > 0) {
            const td = nowMs();
            for (let i = 0; i < decode; i++) {
              await engine.forward({ cacheId: 'c', ids: Int32Array.of(3 + (i % 100)), positions: Int32Array.of(N + i), logits: 'last' });
            }
            decodeMs.get(e.key)!.push((nowMs() - td) / decode);
          }
          stats.set(e.key, { attendCalls: s1.attendCalls - s0.attendCalls, attendFlops: s1.attendFlops - s0.attendFlops, linearFlops: s1.linearFlops - s0.linearFlops, forwardMs: s1.forwardMs });
          progress(`round ${r + 1}: ${e.key}: ${(dt / 1000).toFixed(2)} s, RSS ${(process.memoryUsage().rss / 2 ** 30).toFixed(2)} GiB`);
        } finally {
          await engine.close();
        }
      }
    }
    const flops = forwardFlops(cfg, 0, N, 1).total;
    const useful = causalPairs(0, N) * 4 * cfg.numHeads * cfg.headDim * cfg.numLayers;
    const rows: Row[] = configsK.map((e) => {
      const t = times.get(e.key)!;
      const best = Math.min(...t);
      const st = stats.get(e.key)!;
      const c = counters.get(e.key)![t.indexOf(best)];
      const ref = logits.get(configsK[0].key)!;
      const mine = logits.get(e.key)!;
      let dl = 0;
      for (let i = 0; i < ref.length; i++) dl = Math.max(dl, Math.abs(ref[i] - mine[i]));
      return { config: e.key, options: e.opts, n: N, times: t, bestMs: best, gflops: flops / (best * 1e6), issuedOverUseful: st.attendFlops / useful, attendCalls: st.attendCalls, counters: c, rssGiB: rss.get(e.key)! / 2 ** 30, maxAbsLogitDiff: dl, decodeMsPerToken: decode > 0 ? Math.min(...decodeMs.get(e.key)!) : NaN };
    });
    const base = rows[0].bestMs;
    const rate = Math.max(...mm);
    process.stdout.write(`N=${N}, threads ${threads}, MatMul reference per round: ${mm.map((x) => x.toFixed(1)).join(', ')} GFLOP/s (best ${rate.toFixed(1)})\n`);
    process.stdout.write(
      textTable(
        [
          { key: 'config', title: 'config', align: 'left' },
          { key: 'ms', title: 'best prefill ms', digits: 0 },
          { key: 'gfs', title: 'GFLOP/s', digits: 1 },
          { key: 'pct', title: '% MatMul', digits: 1 },
          { key: 'sp', title: 'speed-up', digits: 2 },
          { key: 'iu', title: 'attn issued/useful', digits: 2 },
          { key: 'calls', title: 'attend calls' },
          { key: 'faults', title: 'minor faults' },
          { key: 'user', title: 'user CPU s', digits: 1 },
          { key: 'sys', title: 'sys CPU s', digits: 1 },
          { key: 'rss', title: 'RSS GiB', digits: 2 },
          { key: 'dl', title: 'max|Δlogit|', align: 'right' },
          { key: 'dec', title: 'decode ms/tok', digits: 2 },
        ],
        rows.map((r) => ({ config: r.config, ms: r.bestMs, gfs: r.gflops, pct: (100 * r.gflops) / rate, sp: base / r.bestMs, iu: r.issuedOverUseful, calls: r.attendCalls, faults: r.counters.minorFaults, user: r.counters.userMs / 1000, sys: r.counters.sysMs / 1000, rss: r.rssGiB, dl: r.maxAbsLogitDiff.toExponential(1), dec: r.decodeMsPerToken })),
      ) + '\n',
    );
    const json = argStr('--json', '');
    if (json) fs.writeFileSync(json, JSON.stringify({ date: new Date().toISOString(), threads, n: N, rounds, matmulGflops: mm, rows }, null, 2) + '\n');
  } finally {
    cleanup();
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
