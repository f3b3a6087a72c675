/**
 * A small, dependency-free SVG line chart (log or linear axes, legend, dashed series) for
 * benchmark plots. Output is a standalone SVG document.
 */

export interface ChartSeries {
  name: string;
  /** (x, y) points; non-finite or non-positive (on a log axis) points are dropped. */
  points: [number, number][];
  dashed?: boolean;
  /** Palette index (series sharing an index share a colour). @defaultValue the series' position */
  colorIndex?: number;
}

export interface ChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  /** Logarithmic axes (base 2 for x, base 10 for y). @defaultValue false */
  xLog?: boolean;
  yLog?: boolean;
  series: ChartSeries[];
  /** @defaultValue 760 */
  width?: number;
  /** @defaultValue 440 */
  height?: number;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1024 && Number.isInteger(Math.log2(a))) return `${v / 1024}K`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  return String(+v.toPrecision(3));
}

/** Tick values spanning [lo, hi]: powers of the base on log axes, round steps otherwise. */
function ticks(lo: number, hi: number, log: boolean, base: number): number[] {
  if (log) {
    const out: number[] = [];
    for (let e = Math.floor(Math.log(lo) / Math.log(base)); e <= Math.ceil(Math.log(hi) / Math.log(base)); e++) out.push(base ** e);
    return out;
  }
  const span = hi - lo || 1;
  const step = 10 ** Math.floor(Math.log10(span / 5));
  const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => span / s <= 8) ?? step * 10;
  const out: number[] = [];
  for (let v = Math.floor(lo / nice) * nice; v <= hi + 1e-9 * span; v += nice) out.push(+v.toPrecision(12));
  return out;
}

export function lineChart(spec: ChartSpec): string {
  const W = spec.width ?? 760;
  const H = spec.height ?? 440;
  const m = { left: 72, right: 200, top: 40, bottom: 56 };
  const pw = W - m.left - m.right;
  const ph = H - m.top - m.bottom;
  const ok = (x: number, y: number) => Number.isFinite(x) && Number.isFinite(y) && (!spec.xLog || x > 0) && (!spec.yLog || y > 0);
  const series = spec.series.map((s) => ({ ...s, points: s.points.filter(([x, y]) => ok(x, y)).sort((a, b) => a[0] - b[0]) }));
  const xs = series.flatMap((s) => s.points.map((p) => p[0]));
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${m.left + pw / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(spec.title)}</text>`,
  ];
  if (xs.length === 0) {
    parts.push(`<text x="${m.left + pw / 2}" y="${m.top + ph / 2}" text-anchor="middle">no data</text></svg>`);
    return parts.join('\n');
  }
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (spec.xLog) [x0, x1] = [2 ** Math.floor(Math.log2(x0)), 2 ** Math.ceil(Math.log2(x1))];
  if (spec.yLog) [y0, y1] = [10 ** Math.floor(Math.log10(y0)), 10 ** Math.ceil(Math.log10(y1))];
  else [y0, y1] = [Math.min(0, y0), y1 === y0 ? y0 + 1 : y1 * 1.05];
  if (x1 === x0) [x0, x1] = spec.xLog ? [x0 / 2, x1 * 2] : [x0 - 1, x1 + 1];
  const tx = (x: number) => m.left + (spec.xLog ? (Math.log2(x) - Math.log2(x0)) / (Math.log2(x1) - Math.log2(x0)) : (x - x0) / (x1 - x0)) * pw;
  const ty = (y: number) => m.top + ph - (spec.yLog ? (Math.log10(y) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0)) : (y - y0) / (y1 - y0)) * ph;

  parts.push(`<g stroke="#ddd">`);
  for (const t of ticks(x0, x1, !!spec.xLog, 2)) if (t >= x0 && t <= x1) parts.push(`<line x1="${tx(t)}" y1="${m.top}" x2="${tx(t)}" y2="${m.top + ph}"/>`);
  for (const t of ticks(y0, y1, !!spec.yLog, 10)) if (t >= y0 && t <= y1) parts.push(`<line x1="${m.left}" y1="${ty(t)}" x2="${m.left + pw}" y2="${ty(t)}"/>`);
  parts.push(`</g>`);
  parts.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  for (const t of ticks(x0, x1, !!spec.xLog, 2)) if (t >= x0 && t <= x1) parts.push(`<text x="${tx(t)}" y="${m.top + ph + 18}" text-anchor="middle">${fmt(t)}</text>`);
  for (const t of ticks(y0, y1, !!spec.yLog, 10)) if (t >= y0 && t <= y1) parts.push(`<text x="${m.left - 8}" y="${ty(t) + 4}" text-anchor="end">${fmt(t)}</text>`);
  parts.push(`<text x="${m.left + pw / 2}" y="${H - 14}" text-anchor="middle">${esc(spec.xLabel)}</text>`);
  parts.push(`<text transform="translate(18 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(spec.yLabel)}</text>`);

  series.forEach((s, i) => {
    const color = PALETTE[(s.colorIndex ?? i) % PALETTE.length];
    const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
    if (s.points.length > 1) parts.push(`<polyline class="series" data-name="${esc(s.name)}" fill="none" stroke="${color}" stroke-width="2"${dash} points="${s.points.map(([x, y]) => `${tx(x).toFixed(1)},${ty(y).toFixed(1)}`).join(' ')}"/>`);
    for (const [x, y] of s.points) parts.push(`<circle class="point" data-series="${esc(s.name)}" cx="${tx(x).toFixed(1)}" cy="${ty(y).toFixed(1)}" r="3" fill="${color}"><title>${esc(s.name)}: ${fmt(x)}, ${fmt(y)}</title></circle>`);
    const ly = m.top + 10 + i * 18;
    parts.push(`<line x1="${m.left + pw + 14}" y1="${ly}" x2="${m.left + pw + 38}" y2="${ly}" stroke="${color}" stroke-width="2"${dash}/>`);
    parts.push(`<text x="${m.left + pw + 44}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
