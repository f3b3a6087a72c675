/**
 * Probe: page faults and system CPU of one prefill, run (a) through ModelEngine (executor in a
 * worker thread, as in production) or (b) with the same ModelExecutor created on the main thread.
 * Run it under different glibc malloc settings to see whether the faults come from the allocator:
 *
 *   npx tsx bench/lib/probe-faults.ts --mode engine   --n 8192
 *   npx tsx bench/lib/probe-faults.ts --mode executor --n 8192
 *   MALLOC_ARENA_MAX=1 npx tsx bench/lib/probe-faults.ts --mode engine --n 8192
 */
import { loadConfig, ModelEngine } from '@starq/model';
import { ModelExecutor } from '@starq/model/runtime/executor';
import { loadModelDir } from '@starq/model/weights';
import { writeRandomBenchModel } from './models';
import { diffCounters, procCounters } from './procstat';
import { nowMs } from './timing';
import { argStr } from './args';

async function main(): Promise<void> {
  const mode = argStr('--mode', 'engine');
  const N = Number(argStr('--n', '8192'));
  const reps = Number(argStr('--reps', '2'));
  const threads = Number(argStr('--threads', '2'));
  const { dir, cleanup } = writeRandomBenchModel(Math.max(16448, N + 64));
  try {
    const ids = Int32Array.from({ length: N }, (_, i) => 3 + ((i * 7919) % 509));
    const positions = Int32Array.from({ length: N }, (_, i) => i);
    let run: (id: string) => Promise<unknown>;
    let close: () => Promise<void>;
    if (mode === 'engine') {
      const engine = await ModelEngine.load(dir, loadConfig(dir), { threads });
      run = async (id) => {
        await engine.forward({ cacheId: id, ids, positions, logits: 'last', reserve: N });
        await engine.dropCache(id);
      };
      close = () => engine.close();
    } else {
      const { config, weights } = loadModelDir(dir);
      const ex = await ModelExecutor.create(config, weights, { threads });
      run = async (id) => {
        await ex.forward({ cacheId: id, ids, positions, logits: 'last', reserve: N });
        ex.dropCache(id);
      };
      close = async () => undefined;
    }
    for (let r = 0; r < reps; r++) {
      const c0 = procCounters();
      const t0 = nowMs();
      await run(`c${r}`);
      const dt = nowMs() - t0;
      const c = diffCounters(c0, procCounters());
      process.stdout.write(
        `${mode} N=${N} rep ${r + 1}: ${(dt / 1000).toFixed(2)} s, minor faults ${c.minorFaults}, user ${(c.userMs / 1000).toFixed(1)} s, sys ${(c.sysMs / 1000).toFixed(1)} s, MALLOC_ARENA_MAX=${process.env.MALLOC_ARENA_MAX ?? '-'}\n`,
      );
    }
    await close();
  } finally {
    cleanup();
  }
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
