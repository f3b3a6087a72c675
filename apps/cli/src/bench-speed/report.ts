/**
 * Output of `starq bench speed`: the table (text or Markdown), the JSON document and the plots.
 */
import { markdownTable, textTable, type Column, type MachineInfo } from '@starq/report';
import { lineChart, type ChartSeries } from './svg-chart';
import type { SpeedCellResult, SpeedResult } from './runner';

const COLUMNS: Column[] = [
  { key: 'mode', title: 'mode', align: 'left' },
  { key: 'contextTokens', title: 'N' },
  { key: 'block', title: 'b', align: 'left' },
  { key: 'anchorSize', title: 'a' },
  { key: 'hosts', title: 'hosts' },
  { key: 'blocks', title: 'blocks' },
  { key: 'phase1Ms', title: 'phase 1 ms' },
  { key: 'firstTokenMs', title: 'TTFT ms' },
  { key: 'decodeTokensPerSec', title: 'decode tok/s', digits: 1 },
  { key: 'gflop', title: 'GFLOP', digits: 1 },
  { key: 'gflops', title: 'GFLOP/s', digits: 1 },
  { key: 'pctMatmul', title: '% MatMul', digits: 0 },
  { key: 'ratioVsGlobal', title: '× vs Global', digits: 2 },
  { key: 'predictedRatioVsGlobal', title: 'FLOP-predicted ×', digits: 2 },
  { key: 'ofPredicted', title: '% of predicted', digits: 0 },
  { key: 'predictedRatioAnchorPerBlock', title: 'predicted × (anchor per block)', digits: 2 },
  { key: 'ratioVsRing', title: '× vs Ring', digits: 2 },
  { key: 'peakRssMb', title: 'peak RSS MB' },
  { key: 'kvMb', title: 'KV MB' },
  { key: 'expectedMb', title: 'KV + engines MB' },
  { key: 'peakVsExpected', title: 'peak / (KV + engines)', digits: 2 },
];

function row(c: SpeedCellResult): Record<string, string | number | null> {
  return {
    ...c,
    predicted: null,
    mode: c.predicted ? `${c.mode} (predicted, not run)` : c.mode,
    block: c.mode === 'global' ? '–' : `${c.blockSize} (${c.blockLabel})`,
    pctMatmul: c.predicted ? null : c.efficiency * 100,
    ofPredicted: c.ratioVsGlobal !== null && c.predictedRatioVsGlobal ? (100 * c.ratioVsGlobal) / c.predictedRatioVsGlobal : null,
  };
}

export function formatSpeedTable(r: SpeedResult, markdown: boolean): string {
  const head =
    `${r.backend}, ${r.threads} thread${r.threads > 1 ? 's' : ''}; roofline: ORT fp32 MatMul ` +
    `${r.roofline.shape.m}×${r.roofline.shape.k}·${r.roofline.shape.k}×${r.roofline.shape.n} = ${r.roofline.matmulGflops.toFixed(1)} GFLOP/s ` +
    `(same run, best of before ${r.roofline.before.toFixed(1)} / after ${r.roofline.after.toFixed(1)}); ` +
    `query ${r.queryTokens} tokens, ${r.newTokens} new tokens`;
  const rows = r.cells.map(row);
  const notes = r.cells
    .filter((c) => c.predicted)
    .map(
      (c) =>
        `global at N = ${c.contextTokens.toLocaleString('en-US')} is predicted, not run: ${c.gflop.toFixed(1)} GFLOP at the phase-1 rate Global measured at ` +
        `N = ${c.predictedFrom!.toLocaleString('en-US')} in this run (${c.gflops.toFixed(1)} GFLOP/s); "× vs Global" at N = ${c.contextTokens.toLocaleString('en-US')} is against that prediction`,
    );
  const memo =
    'KV MB: the KV the cell holds (context rows, Star\'s anchor once per host, the query actor\'s rows); KV + engines MB adds the RSS of the ' +
    "cell's processes with their engines loaded, before the request (weights, ORT sessions, runtime); peak RSS is the cell's high-water mark";
  return `${head}\n\n${markdown ? markdownTable(COLUMNS, rows) : textTable(COLUMNS, rows)}\n${[...notes, memo].map((n) => `${markdown ? '- ' : ''}${n}\n`).join('')}`;
}

export interface SpeedJsonMeta {
  model: string;
  machine: MachineInfo;
  command: string;
}

/** The JSON document (names of `roofline.matmulGflops` and the cell fields are a contract). */
export function speedJson(r: SpeedResult, meta: SpeedJsonMeta): Record<string, unknown> {
  return {
    roofline: r.roofline,
    backend: r.backend,
    threads: r.threads,
    queryTokens: r.queryTokens,
    newTokens: r.newTokens,
    model: meta.model,
    machine: meta.machine,
    command: meta.command,
    cells: r.cells,
  };
}

function seriesName(c: SpeedCellResult): string {
  if (c.mode === 'global') return 'global';
  if (c.mode === 'ring') return `ring, ${c.hosts} host${c.hosts > 1 ? 's' : ''}`;
  return `star b=${c.blockLabel}, ${c.hosts} host${c.hosts > 1 ? 's' : ''}`;
}

/** SVG plots by file name: phase-1 time vs context per mode, speedup vs N/b per context. */
export function speedPlots(r: SpeedResult): Record<string, string> {
  const byName = new Map<string, ChartSeries>();
  for (const c of r.cells) {
    const name = seriesName(c);
    if (!byName.has(name)) byName.set(name, { name, points: [] });
    byName.get(name)!.points.push([c.contextTokens, c.phase1Ms]);
  }
  const timePlot = lineChart({
    title: `Phase-1 wall time vs context (${r.backend}, ${r.threads} threads)`,
    xLabel: 'context tokens N',
    yLabel: 'phase 1 (ms)',
    xLog: true,
    yLog: true,
    series: [...byName.values()],
  });
  const speedup: ChartSeries[] = [];
  const contexts = [...new Set(r.cells.map((c) => c.contextTokens))].sort((a, b) => a - b);
  for (const N of contexts) {
    const stars = r.cells.filter((c) => c.mode === 'star' && c.contextTokens === N && c.ratioVsGlobal !== null);
    const hostsList = [...new Set(stars.map((c) => c.hosts))];
    for (const h of hostsList) {
      const s = stars.filter((c) => c.hosts === h);
      const tag = `N=${N}${hostsList.length > 1 ? `, ${h} hosts` : ''}`;
      const colorIndex = speedup.length / 2;
      speedup.push({ name: `measured ${tag}`, points: s.map((c) => [N / c.blockSize, c.ratioVsGlobal!]), colorIndex });
      speedup.push({ name: `FLOP-predicted ${tag}`, points: s.map((c) => [N / c.blockSize, c.predictedRatioVsGlobal!]), dashed: true, colorIndex });
    }
  }
  const speedupPlot = lineChart({
    title: `Star phase-1 speedup over Global vs N/b (${r.backend})`,
    xLabel: 'N / b (blocks)',
    yLabel: 'speedup over Global (×)',
    xLog: true,
    series: speedup,
  });
  return { 'phase1-vs-context.svg': timePlot, 'speedup-vs-blocks.svg': speedupPlot };
}
