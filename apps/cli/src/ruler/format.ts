/**
 * Output of `starq eval ruler`: the table (stdout) and the JSON object (`--json`).
 *
 * JSON: `{"model","haystack","prompt","seed","samples","hosts","elapsedMs","lengths":[{"task","length",
 * "meanTokens","minTokens","maxTokens"}],"results":[{"task","length","mode","accuracy","samples",
 * "exact","meanLatencyMs","meanGeneratedTokens","maxNewTokens"} + for star: "blockSize","anchorSize",
 * "block","anchor","retention"]}`. `accuracy` is RULER's string_match_all as a fraction in [0, 1];
 * `retention` = star accuracy / global accuracy (null when there is no global cell or it scored 0).
 */
import type { CellResult, RulerResult } from './runner';

export interface RunInfo {
  model: string;
  haystack: string;
  seed: number;
  samples: number;
}

function pct(v: number | null | undefined): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '-' : `${(v * 100).toFixed(1)}%`;
}

/** The human-readable table. */
export function formatRulerTable(r: RulerResult, info: RunInfo): string {
  const lines: string[] = [];
  lines.push(`model ${info.model}: ${info.samples} sample${info.samples > 1 ? 's' : ''} per cell, seed ${info.seed}, haystack ${info.haystack}, ${r.prompt} prompt, ${r.hosts} host${r.hosts > 1 ? 's' : ''}`);
  lines.push('accuracy = RULER string_match_all (whole-word); retention = star / global');
  lines.push('');
  const head = ['task', 'length', 'tokens', 'mode', 'block', 'anchor', 'samples', 'accuracy', 'retention', 'ms/sample'];
  const rows = r.results.map((c: CellResult) => {
    const ls = r.lengths.find((l) => l.task === c.task && l.length === c.length);
    return [
      c.task,
      String(c.length),
      ls ? (ls.minTokens === ls.maxTokens ? String(ls.minTokens) : `${ls.minTokens}-${ls.maxTokens}`) : '-',
      c.mode,
      c.blockSize !== undefined ? String(c.blockSize) : '-',
      c.anchorSize !== undefined ? String(c.anchorSize) : '-',
      String(c.samples),
      pct(c.accuracy),
      c.mode === 'star' ? pct(c.retention) : '-',
      c.meanLatencyMs.toFixed(0),
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const fmt = (row: string[]) => row.map((v, i) => (i === 0 || i === 3 ? v.padEnd(widths[i]) : v.padStart(widths[i]))).join('  ');
  lines.push(fmt(head));
  for (const row of rows) lines.push(fmt(row));
  return lines.join('\n') + '\n';
}

/** The `--json` object (see the module doc). */
export function rulerJson(r: RulerResult, info: RunInfo): Record<string, unknown> {
  return {
    model: info.model,
    haystack: info.haystack,
    prompt: r.prompt,
    seed: info.seed,
    samples: info.samples,
    hosts: r.hosts,
    elapsedMs: Math.round(r.elapsedMs),
    lengths: r.lengths,
    results: r.results.map((c) => ({
      task: c.task,
      length: c.length,
      mode: c.mode,
      accuracy: c.accuracy,
      samples: c.samples,
      ...(c.mode === 'star' ? { blockSize: c.blockSize, anchorSize: c.anchorSize, block: c.block, anchor: c.anchor, retention: c.retention ?? null } : {}),
      exact: c.exact,
      meanLatencyMs: Math.round(c.meanLatencyMs * 10) / 10,
      meanGeneratedTokens: c.meanGeneratedTokens,
      maxNewTokens: c.maxNewTokens,
    })),
  };
}
