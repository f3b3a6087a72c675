/**
 * Summarise a V8 .cpuprofile: self time per function (top N) and the share of samples spent in
 * "(program)"/"(idle)"/"(garbage collector)" and in native calls.
 *
 *   npx tsx bench/lib/cpuprofile-summary.ts FILE.cpuprofile [--top 20]
 */
import * as fs from 'node:fs';
import { textTable } from '@starq/report';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export function summarise(file: string, top = 20): { totalMs: number; rows: { fn: string; where: string; ms: number; pct: number }[] } {
  const p = JSON.parse(fs.readFileSync(file, 'utf8')) as Profile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const agg = new Map<string, { fn: string; where: string; us: number }>();
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const where = n.callFrame.url ? `${n.callFrame.url.replace(/^.*\/work\/main\//, '')}:${n.callFrame.lineNumber + 1}` : '';
    const key = `${n.callFrame.functionName}|${where}`;
    const a = agg.get(key) ?? { fn: n.callFrame.functionName || '(anonymous)', where, us: 0 };
    a.us += us;
    agg.set(key, a);
  }
  const total = p.endTime - p.startTime;
  const rows = [...agg.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((a) => ({ fn: a.fn, where: a.where, ms: a.us / 1000, pct: (100 * a.us) / total }));
  return { totalMs: total / 1000, rows };
}

if (require.main === module) {
  const file = process.argv[2];
  const ti = process.argv.indexOf('--top');
  const { totalMs, rows } = summarise(file, ti >= 0 ? Number(process.argv[ti + 1]) : 20);
  process.stdout.write(`${file}: ${totalMs.toFixed(0)} ms profiled\n`);
  process.stdout.write(
    textTable(
      [
        { key: 'fn', title: 'function (self time)', align: 'left' },
        { key: 'where', title: 'location', align: 'left' },
        { key: 'ms', title: 'ms', digits: 0 },
        { key: 'pct', title: '%', digits: 1 },
      ],
      rows,
    ) + '\n',
  );
}
