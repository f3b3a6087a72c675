/**
 * `starq bench serve` end to end on tiny sizes: a real `node bin/starq` process running the cluster
 * setting (actor processes on the local Redis) and the in-process setting. Checks --help, the JSON
 * report's structure and self-consistency (every variant × level present, ratios to C = 1, token
 * counts), and bad-input handling — never timings.
 */
import { starq as run, type Run } from './helpers/cli';

function starq(args: string[]): Promise<Run> {
  return run(args, 400_000);
}

const TINY = ['--concurrency', '1,2', '--context', '64', '--query-tokens', '3', '--new-tokens', '4', '--step-tokens', '3', '--random-model', 'hidden=32,layers=1,heads=2,kv-heads=1', '--rounds', '1'];

describe('starq bench serve', () => {
  it('--help documents every flag', async () => {
    const r = await starq(['bench', 'serve', '--help']);
    expect(r.code).toBe(0);
    for (const f of ['--concurrency', '--context', '--query-tokens', '--new-tokens', '--step-tokens', '--hosts', '--random-model', '--variants', '--settings', '--rounds', '--redis', '--json', '--markdown']) expect(r.stdout).toContain(f);
    for (const v of ['batched', 'batched-attn-per-request', 'unbatched', 'in-process', 'cluster']) expect(r.stdout).toContain(v);
    expect(r.stdout).toContain('Environment:');
  });

  it('runs every variant at every level on the cluster and in-process; the JSON report is complete and consistent', async () => {
    const r = await starq(['bench', 'serve', ...TINY, '--json', '-']);
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as {
      rows: { setting: string; variant: string; concurrency: number; tokens: number; decodeTokPerSec: number; xSingle: number; p99xSingle: number; perTokenP99: number }[];
      steps: { variant: string; concurrency: number; steps: number; medianMs: number; xSingle: number }[];
      loadAverage: { before: number; after: number };
      machine: unknown;
    };
    const variants = ['batched', 'batched-attn-per-request', 'unbatched'];
    expect(doc.rows.map((x) => `${x.setting}/${x.variant}/${x.concurrency}`)).toEqual(['cluster', 'in-process'].flatMap((s) => variants.flatMap((v) => [1, 2].map((c) => `${s}/${v}/${c}`))));
    for (const row of doc.rows) {
      expect(row.tokens).toBe(row.concurrency * (row.setting === 'cluster' ? 4 : 3));
      expect(row.decodeTokPerSec).toBeGreaterThan(0);
      if (row.concurrency === 1) expect([row.xSingle, row.p99xSingle]).toEqual([1, 1]);
    }
    expect(doc.steps.map((x) => `${x.variant}/${x.concurrency}`)).toEqual(variants.flatMap((v) => [1, 2].map((c) => `${v}/${c}`)));
    for (const s of doc.steps) {
      expect(s.steps).toBeGreaterThan(0);
      expect(s.medianMs).toBeGreaterThan(0);
      if (s.concurrency === 1) expect(s.xSingle).toBe(1);
    }
    expect(doc.loadAverage.before).toBeGreaterThanOrEqual(0);
    expect(doc.machine).toBeTruthy();
    expect(r.stderr).toContain('Step time vs batch size');
  });

  it('bad flags exit 2 with a code naming the flag', async () => {
    const cases: [string[], string, string][] = [
      [['--concurrency', '1,x'], 'invalid_flag', 'concurrency'],
      [['--variants', 'batched,warp'], 'invalid_flag', 'variants'],
      [['--random-model', 'hidden=30,layers=1,heads=4,kv-heads=1'], 'invalid_random_model', 'random-model'],
      [['--context', '3'], 'invalid_flag', 'context'],
    ];
    for (const [args, code, param] of cases) {
      const r = await starq(['bench', 'serve', ...args]);
      expect([r.code, r.stderr.trim()]).toEqual([2, expect.stringContaining(`[${code}] (${param})`)]);
    }
  });
});
