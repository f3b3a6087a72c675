/**
 * The cells of a speed benchmark and their analytic FLOP counts.
 *
 * Per context N: one Global cell (the whole context on one host that has every thread), and per
 * host count H: one Ring cell (one block per host, b = ⌈N/H⌉ — the paper's ring setup) and one Star
 * cell per block size (anchor per --anchor-size, default a = b). With --predict-global-from N₀,
 * Global runs once at N₀ and every context's Global cell is *predicted* instead (not run): its
 * phase-1 time is its FLOPs at the rate Global measured at N₀ in the same run. All cells are
 * validated up front with the same planner the runtime uses; every unsupported combination is
 * reported together.
 */
import { planMode, type Mode, type StarPlan } from '@starq/attention';
import { phase1Flops, phase2Flops } from '@starq/model/perf/flops';
import { checkPositions } from '@starq/model/positions';
import { kvBytesPerToken } from '@starq/model/runtime/kv-cache';
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
  /**
   * Not run: a Global cell whose phase-1 time is predicted from its FLOPs and the rate Global
   * measured at this context in the same run. null: the cell runs.
   */
  predictedFrom: number | null;
  /** KV bytes the cell holds at its end (see `cellKvBytes`). */
  kvBytes: number;
}

/**
 * KV bytes a request holds once phase 1 is done and its last token generated (the paged cache's
 * `kvBytesPerToken` per row): every context token once (Star keeps each block's own rows; Ring
 * and Global the whole context), Star's anchor once on every host that holds an anchored block,
 * and the query actor's own cache (query + generated tokens).
 */
export function cellKvBytes(config: ModelConfig, mode: Mode, plan: StarPlan, ownTokens: number): number {
  let rows = plan.contextLength + ownTokens;
  if (mode === 'star') for (const a of plan.assignments) if (a.blocks.some((k) => plan.blocks[k].phase1.keepFrom > 0)) rows += plan.anchorLength;
  return rows * kvBytesPerToken(config);
}

export function planCells(o: SpeedOptions, config: ModelConfig): SpeedCellSpec[] {
  const cells: SpeedCellSpec[] = [];
  const problems: string[] = [];
  let first: StarqError | null = null;
  const seen = new Set<string>();
  const add = (mode: Mode, N: number, hosts: number, label: string, blockSize?: number, anchorSize?: number, predictedFrom: number | null = null) => {
    try {
      const plan = planMode(mode, N, mode === 'global' ? {} : { blockSize, anchorSize: mode === 'ring' ? undefined : anchorSize, hosts });
      const key = `${mode}/${N}/${plan.blockSize}/${plan.anchorSize}/${plan.effectiveHosts}${predictedFrom !== null ? '/predicted' : ''}`;
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
        predictedFrom,
        kvBytes: cellKvBytes(config, mode, plan, o.queryTokens + o.newTokens),
      });
    } catch (e) {
      if (!(e instanceof StarqError)) throw e;
      first ??= e;
      problems.push(`${mode} N=${N} hosts=${hosts}${blockSize !== undefined ? ` b=${blockSize}` : ''}: ${e.message}`);
    }
  };
  const fits = (N: number, param: string): boolean => {
    try {
      checkPositions({ contextTokens: N, queryTokens: o.queryTokens, maxNewTokens: o.newTokens }, config, { context: param, maxNewTokens: 'new-tokens' });
      return true;
    } catch (e) {
      if (!(e instanceof StarqError)) throw e;
      first ??= e;
      problems.push(e.message);
      return false;
    }
  };
  const N0 = o.predictGlobalFrom;
  if (N0 !== null && fits(N0, 'predict-global-from')) add('global', N0, 1, 'global');
  for (const N of o.contexts) {
    if (!fits(N, 'contexts')) continue;
    if (o.modes.includes('global')) add('global', N, 1, 'global');
    else if (N0 !== null && N !== N0) add('global', N, 1, 'global', undefined, undefined, N0);
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
