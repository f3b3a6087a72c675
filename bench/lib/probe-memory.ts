/**
 * Probe: process RSS of one engine (random bench model) after load and after single-forward
 * prefills of growing length, with the KV cache dropped after each — what stays is what the ORT
 * sessions' arenas keep. Also the same with the prefill split into forwards of `--chunk` tokens
 * (as generate.ts does for Global mode), which bounds the activations of one call.
 *
 *   npx tsx bench/lib/probe-memory.ts [--threads 2] [--sizes 1024,4096,8192] [--chunk 2048]
 */
import { loadConfig, ModelEngine } from '@starq/model';
import { writeRandomBenchModel } from './models';
import { textTable } from '@starq/report';
import { progress } from './timing';
import { argStr } from './args';

const gib = () => process.memoryUsage().rss / 2 ** 30;

async function main(): Promise<void> {
  const threads = Number(argStr('--threads', '2'));
  const sizes = argStr('--sizes', '1024,4096,8192').split(',').map(Number);
  const chunk = Number(argStr('--chunk', '2048'));
  const { dir, cleanup } = writeRandomBenchModel(Math.max(16448, ...sizes.map((n) => n + 64)));
  const rows: Record<string, string | number>[] = [];
  try {
    const cfg = loadConfig(dir);
    for (const chunked of [false, true]) {
      const base = gib();
      const engine = await ModelEngine.load(dir, cfg, { threads });
      rows.push({ mode: chunked ? `chunks of ${chunk}` : 'one forward', n: 0, rss: gib(), delta: gib() - base });
      try {
        for (const N of sizes) {
          const ids = Int32Array.from({ length: N }, (_, i) => 3 + (i % 500));
          const positions = Int32Array.from({ length: N }, (_, i) => i);
          const step = chunked ? chunk : N;
          await engine.createCache('m', N);
          for (let t = 0; t < N; t += step) {
            const e = Math.min(N, t + step);
            await engine.forward({ cacheId: 'm', ids: ids.subarray(t, e), positions: positions.subarray(t, e), logits: e === N ? 'last' : 'none' });
          }
          await engine.dropCache('m');
          rows.push({ mode: chunked ? `chunks of ${chunk}` : 'one forward', n: N, rss: gib(), delta: gib() - base });
          progress(`${chunked ? 'chunked' : 'single'} N=${N}: RSS ${gib().toFixed(2)} GiB`);
        }
      } finally {
        await engine.close();
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    cleanup();
  }
  process.stdout.write(
    textTable(
      [
        { key: 'mode', title: 'prefill', align: 'left' },
        { key: 'n', title: 'after N (0 = after load)' },
        { key: 'rss', title: 'RSS GiB', digits: 2 },
        { key: 'delta', title: 'engine GiB', digits: 2 },
      ],
      rows,
    ) + '\n',
  );
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
