/**
 * Probe: the query actor's side of a Star phase-2 decode step on one engine — per layer
 * `queryLayer` (q/k/v, append, own partial) then `post`, i.e. 2 worker calls per layer, against the
 * fused `postQueryLayer` (post(l) + queryLayer(l + 1) in one worker call: L + 1 calls per step).
 * The hosts' partials are left out (the own partial stands in for the merged one), so the
 * difference is the worker round trips saved. Interleaved rounds, best per variant.
 *
 *   npx tsx bench/lib/probe-query-steps.ts [--threads 2] [--steps 32] [--rounds 3] [--model-dir DIR]
 */
import { loadConfig, ModelEngine } from '@starq/model';
import { writeRandomBenchModel } from './models';
import { nowMs } from './timing';
import { argStr } from './args';

async function main(): Promise<void> {
  const threads = Number(argStr('--threads', '2'));
  const steps = Number(argStr('--steps', '32'));
  const rounds = Number(argStr('--rounds', '3'));
  const modelDir = argStr('--model-dir', '');
  const { dir, cleanup } = modelDir ? { dir: modelDir, cleanup: () => undefined } : writeRandomBenchModel(16448);
  try {
    const cfg = loadConfig(dir);
    const L = cfg.numLayers;
    const engine = await ModelEngine.load(dir, cfg, { threads });
    const best = { split: Infinity, fused: Infinity };
    for (let r = 0; r < rounds; r++) {
      for (const variant of ['split', 'fused'] as const) {
        const cacheId = `${variant}-${r}`;
        await engine.createCache(cacheId, steps);
        const t0 = nowMs();
        for (let s = 0; s < steps; s++) {
          const pos = Int32Array.of(s);
          let x = await engine.embed(Int32Array.of(3 + (s % 100)));
          const groups = [{ cacheId, positions: pos }];
          let [own] = (await engine.queryLayer(0, x, groups)).own;
          for (let l = 0; l < L - 1; l++) {
            if (variant === 'fused') {
              const r = await engine.postQueryLayer(l, x, own.o, groups);
              x = r.x;
              own = r.own[0];
            } else {
              x = await engine.post(l, x, own.o);
              [own] = (await engine.queryLayer(l + 1, x, groups)).own;
            }
          }
          x = await engine.post(L - 1, x, own.o);
          await engine.head(x);
        }
        best[variant] = Math.min(best[variant], (nowMs() - t0) / steps);
        await engine.dropCache(cacheId);
      }
    }
    await engine.close();
    process.stdout.write(
      `query-actor step of 1 row, ${L} layers: queryLayer + post ${best.split.toFixed(2)} ms/step (${2 * L + 2} worker calls), ` +
        `postQueryLayer ${best.fused.toFixed(2)} ms/step (${L + 2} calls): ${(best.split - best.fused).toFixed(2)} ms saved\n`,
    );
  } finally {
    cleanup();
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
