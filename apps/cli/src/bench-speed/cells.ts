/**
 * The cells of a speed benchmark and their analytic FLOP counts.
 *
 * Per context N: one Global cell (the whole context on one host that has every thread), and per
 * host count H: one Ring cell (one block per host, b = ⌈N/H⌉ — the paper's ring setup) and one Star
 * cell per block size (anchor per --anchor-size, default a = b). All cells are validated up front
 * with the same planner the runtime uses; every unsupported combination is reported together.
 */
import { planMode, type Mode, type StarPlan } from '@starq/attention';
import { phase1Flops, phase2Flops } from '@starq/model/perf/flops';
import { checkPositions } from '@starq/model/positions';
import type { ModelConfig } from '@starq/model/types';
import { InvalidInputError, StarqError } from '@starq/protocol/errors';
import { resolveAnchorSize, resolveBlockSize, type SpeedOptions } from './options';

export interface SpeedCellSpec {
  mode: Mode;
  contextTokens: number;
  blockSize: number;
  anchorSize: number;
  hosts: number;
  /** How the block size was asked for (`N/4`, `1024`, `ring: N/H`, `global`). */
  blockLabel: string;
  plan: StarPlan;
  /** Analytic phase-1 FLOPs, Star's anchor once per host (see libs/model/src/perf/flops.ts). */
  phase1Flops: number;
  /** The same with Star's anchor recomputed for every block (the paper's count; = phase1Flops otherwise). */
  phase1FlopsAnchorPerBlock: number;
  /** Analytic phase-2 FLOPs: query chunk + decode steps + lm_head rows. */
  phase2Flops: number;
}

export function planCells(o: SpeedOptions, config: ModelConfig): SpeedCellSpec[] {
  const cells: SpeedCellSpec[] = [];
  const problems: string[] = [];
  let first: StarqError | null = null;
  const seen = new Set<string>();
  const add = (mode: Mode, N: number, hosts: number, label: string, blockSize?: number, anchorSize?: number) => {
    try {
      const plan = planMode(mode, N, mode === 'global' ? {} : { blockSize, anchorSize: mode === 'ring' ? undefined : anchorSize, hosts });
      const key = `${mode}/${N}/${plan.blockSize}/${plan.anchorSize}/${plan.effectiveHosts}`;
      if (seen.has(key)) return;
      seen.add(key);
      cells.push({
        mode,
        contextTokens: N,
        blockSize: plan.blockSize,
        anchorSize: plan.anchorSize,
        hosts: plan.effectiveHosts,
        blockLabel: label,
        plan,
        phase1Flops: phase1Flops(config, mode, plan).total,
        phase1FlopsAnchorPerBlock: phase1Flops(config, mode, plan, { anchorPerBlock: true }).total,
        phase2Flops: phase2Flops(config, N, o.queryTokens, o.newTokens).total,
      });
    } catch (e) {
      if (!(e instanceof StarqError)) throw e;
      first ??= e;
      problems.push(`${mode} N=${N} hosts=${hosts}${blockSize !== undefined ? ` b=${blockSize}` : ''}: ${e.message}`);
    }
  };
  for (const N of o.contexts) {
    try {
      checkPositions({ contextTokens: N, queryTokens: o.queryTokens, maxNewTokens: o.newTokens }, config, { context: 'contexts', maxNewTokens: 'new-tokens' });
    } catch (e) {
      if (!(e instanceof StarqError)) throw e;
      first ??= e;
      problems.push(e.message);
      continue;
    }
    if (o.modes.includes('global')) add('global', N, 1, 'global');
    for (const H of o.hosts) {
      if (o.modes.includes('ring')) add('ring', N, H, `N/${H}`, Math.ceil(N / H));
      if (o.modes.includes('star')) {
        for (const spec of o.blockSizes) {
          const b = resolveBlockSize(spec, N);
          add('star', N, H, spec.label, b, resolveAnchorSize(o.anchor, N, b));
        }
      }
    }
  }
  if (problems.length > 0) {
    const f = first as StarqError | null;
    throw new InvalidInputError(f?.code ?? 'invalid_flag', problems.length === 1 ? problems[0] : `unsupported cells: ${problems.join('; ')}`, f?.param ?? 'contexts');
  }
  return cells;
}

/** Predicted phase-1 speedup over Global from FLOPs alone (same hardware, same efficiency). */
export function predictedSpeedup(cell: SpeedCellSpec, global: SpeedCellSpec | undefined): number | null {
  return global ? global.phase1Flops / cell.phase1Flops : null;
}
