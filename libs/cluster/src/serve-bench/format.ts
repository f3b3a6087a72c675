/**
 * The serving benchmark's report as text: a heading line, the rows table, the step-time table and
 * the load averages. The table renderer is passed in (@starq/report's `textTable` or
 * `markdownTable`), so the CLI and bench/serve.ts print the same report.
 */
import type { ServeBenchReport } from './run';
import { SERVE_ROW_COLUMNS, SERVE_STEP_COLUMNS } from './run';

type Columns = readonly { key: string; title: string; digits?: number; align?: 'left' | 'right' }[];
export type TableRenderer = (columns: Columns, rows: object[]) => string;

export function formatServeReport(r: ServeBenchReport, table: TableRenderer): string {
  const o = r.options;
  const lines = [
    `Serving: ${o.hosts} hosts, 1 query actor, Star b = ${Math.ceil(o.context / o.hosts)}, ${o.context}-token documents (pre-encoded), ${o.queryTokens}-token queries, ` +
      `${o.newTokens} tokens per request on the cluster, ${o.stepTokens} in-process; model ${JSON.stringify(o.model)}; best of ${o.rounds} round(s)`,
    table(SERVE_ROW_COLUMNS, r.rows),
  ];
  if (r.steps.length > 0) lines.push('', 'Step time vs batch size (in-process; a decode step with all C requests in it, unbatched: one request\'s step):', table(SERVE_STEP_COLUMNS, r.steps));
  lines.push('', `1-minute load average: ${r.loadAverage.before.toFixed(2)} before, ${r.loadAverage.after.toFixed(2)} after`);
  return `${lines.join('\n')}\n`;
}
