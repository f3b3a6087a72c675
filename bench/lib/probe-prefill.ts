/**
 * Probe: one prefill of the random bench model with given engine options — a small driver for
 * external profilers, e.g. V8's CPU profiler over the main thread and the engine's worker:
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/lib/probe-prefill.ts \
 *        --n 16384 --page-size 1024 --score-budget-mib 32
 *   npx tsx bench/lib/cpuprofile-summary.ts /tmp/prof/<worker profile>.cpuprofile
 */
import { loadConfig, ModelEngine, type ExecutorOptions } from '@starq/model';
import { writeRandomBenchModel } from './models';
import { nowMs, progress } from './timing';

function arg(name: string): number | null {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : null;
}

async function main(): Promise<void> {
  const N = arg('--n') ?? 4096;
  const opts: ExecutorOptions = { threads: arg('--threads') ?? 2 };
  const page = arg('--page-size');
  const mib = arg('--score-budget-mib');
  if (page !== null) opts.pageSize = page;
  if (mib !== null) opts.scoreBudgetBytes = mib * 2 ** 20;
  const { dir, cleanup } = writeRandomBenchModel(Math.max(16448, N + 64));
  try {
    const cfg = loadConfig(dir);
    const engine = await ModelEngine.load(dir, cfg, opts);
    const ids = Int32Array.from({ length: N }, (_, i) => 3 + ((i * 7919) % (cfg.vocabSize - 3)));
    const positions = Int32Array.from({ length: N }, (_, i) => i);
    const t0 = nowMs();
    await engine.forward({ cacheId: 'p', ids, positions, logits: 'last', reserve: N });
    progress(`prefill N=${N} ${JSON.stringify(opts)}: ${((nowMs() - t0) / 1000).toFixed(2)} s`);
    await engine.close();
  } finally {
    cleanup();
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
