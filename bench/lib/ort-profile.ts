/**
 * Per-op timing of one ORT session through ORT's own profiler (`enableProfiling`). The session is
 * created with profiling on; `profileRuns` runs it (first run = warm-up, excluded), ends profiling,
 * reads the Chrome-trace JSON ORT wrote and sums kernel time per node and per op type over the
 * measured runs.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ort from 'onnxruntime-node';
import { sessionOptions } from '@starq/model/runtime/session-options';
import { nowMs } from './timing';

export interface OpTime {
  name: string; // node name or op type
  opType: string;
  ms: number; // mean per run
  calls: number; // per run
  outputShape?: string;
}

export interface OpProfile {
  runs: number;
  wallMs: number; // mean wall time per run seen from JS
  modelRunMs: number; // mean ORT model_run duration
  kernelMs: number; // mean sum of node kernel times
  byOpType: OpTime[];
  byNode: OpTime[];
}

interface TraceEvent {
  cat: string;
  name: string;
  ts: number;
  dur: number;
  args?: { op_name?: string; output_type_shape?: unknown };
}

export async function profileSession(model: Uint8Array, feeds: Record<string, ort.Tensor>, opts: { threads: number; runs: number; spinning?: boolean }): Promise<OpProfile> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'starq-prof-'));
  const so = { ...sessionOptions({ threads: opts.threads, spinning: opts.spinning }), enableProfiling: true, profileFilePrefix: path.join(dir, 'p') };
  const session = await ort.InferenceSession.create(model, so);
  await session.run(feeds); // warm-up
  let wall = 0;
  for (let r = 0; r < opts.runs; r++) {
    const t0 = nowMs();
    await session.run(feeds);
    wall += nowMs() - t0;
  }
  session.endProfiling();
  await session.release();
  const file = fs.readdirSync(dir).find((f) => f.endsWith('.json'));
  if (!file) throw new Error(`no ORT profile written in ${dir}`);
  const events = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')) as TraceEvent[];
  fs.rmSync(dir, { recursive: true, force: true });

  const runsEv = events.filter((e) => e.cat === 'Session' && e.name === 'model_run').sort((a, b) => a.ts - b.ts);
  const measured = runsEv.slice(1); // drop warm-up
  const inMeasured = (e: TraceEvent) => measured.some((r) => e.ts >= r.ts && e.ts <= r.ts + r.dur);
  const nodes = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time') && inMeasured(e));
  const n = measured.length || 1;
  const byNode = new Map<string, OpTime>();
  const byType = new Map<string, OpTime>();
  for (const e of nodes) {
    const opType = e.args?.op_name ?? '?';
    const name = e.name.replace(/_kernel_time$/, '');
    const a = byNode.get(name) ?? { name, opType, ms: 0, calls: 0, outputShape: JSON.stringify(e.args?.output_type_shape ?? '') };
    a.ms += e.dur / 1000 / n;
    a.calls += 1 / n;
    byNode.set(name, a);
    const b = byType.get(opType) ?? { name: opType, opType, ms: 0, calls: 0 };
    b.ms += e.dur / 1000 / n;
    b.calls += 1 / n;
    byType.set(opType, b);
  }
  const sort = (xs: OpTime[]) => xs.sort((a, b) => b.ms - a.ms);
  return {
    runs: measured.length,
    wallMs: wall / opts.runs,
    modelRunMs: measured.reduce((s, r) => s + r.dur, 0) / 1000 / n,
    kernelMs: nodes.reduce((s, e) => s + e.dur, 0) / 1000 / n,
    byOpType: sort([...byType.values()]),
    byNode: sort([...byNode.values()]),
  };
}
