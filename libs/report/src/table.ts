/** Plain-text and Markdown table printing (CLI reports, benchmark programs). */

export type Cell = string | number | null | undefined;

export interface Column {
  key: string;
  title: string;
  /** Decimal places for numbers (default 0). */
  digits?: number;
  align?: 'left' | 'right';
}

/** A cell as printed: no value (null, undefined, NaN — a quantity not measured) is `–`. */
export function formatCell(v: Cell, digits = 0): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return String(v);
    return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }
  return v;
}

function cells(columns: Column[], rows: Record<string, Cell>[]): string[][] {
  return rows.map((r) => columns.map((c) => formatCell(r[c.key], c.digits)));
}

/** Fixed-width text table. */
export function textTable(columns: Column[], rows: Record<string, Cell>[]): string {
  const body = cells(columns, rows);
  const widths = columns.map((c, i) => Math.max(c.title.length, ...body.map((r) => r[i].length)));
  const pad = (s: string, i: number) => ((columns[i].align ?? (i === 0 ? 'left' : 'right')) === 'left' ? s.padEnd(widths[i]) : s.padStart(widths[i]));
  const line = (r: string[]) => r.map(pad).join('  ');
  return [line(columns.map((c) => c.title)), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

/** GitHub-flavoured Markdown table. */
export function markdownTable(columns: Column[], rows: Record<string, Cell>[]): string {
  const body = cells(columns, rows);
  const head = `| ${columns.map((c) => c.title).join(' | ')} |`;
  const sep = `|${columns.map((c, i) => ((c.align ?? (i === 0 ? 'left' : 'right')) === 'left' ? ':---' : '---:')).join('|')}|`;
  return [head, sep, ...body.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}
