/**
 * Flag values of `starq eval ruler` and the grid of cells they describe. Every bad value is an
 * `InvalidInputError` (or `CapacityError` for lengths the model cannot hold) naming the flag.
 *
 * Sizes (`--block-size`, `--anchor-size`) are token counts or fractions of the cell's length L (the
 * RULER "context length": context + query tokens): `256`, `1/4`, `0.125`; a fraction resolves to
 * ⌈f·L⌉. `--anchor-size b` is the cell's block size (the default). Every (block, anchor) pair is its
 * own Star cell; global mode has one cell per (task, length).
 */
import { MODES, planMode } from '@starq/attention';
import { CapacityError, InvalidInputError } from '@starq/protocol/errors';
import { TASKS, TASK_SPECS, type TaskName } from './tasks';

/** Modes `eval ruler` compares (ring is exact like global: it would only repeat global's numbers). */
export const RULER_MODES = ['global', 'star'] as const;
export type RulerMode = (typeof RULER_MODES)[number];

/** A size as given: tokens, or a fraction of the length (`text` is the flag spelling, e.g. `1/4`). */
export type SizeSpec = { kind: 'tokens'; value: number; text: string } | { kind: 'fraction'; value: number; text: string };
/** An anchor size: a size, or `b` = the block size. */
export type AnchorSpec = SizeSpec | { kind: 'block'; text: 'b' };

function splitList(value: string, flag: string, code = 'invalid_flag'): string[] {
  const parts = value.split(',').map((s) => s.trim());
  if (value.trim() === '' || parts.some((p) => p === '')) {
    throw new InvalidInputError(code, `--${flag} must be a comma-separated list, got "${value}"`, flag);
  }
  return parts;
}

function dedupe<T>(items: T[], key: (t: T) => string): T[] {
  const seen = new Set<string>();
  return items.filter((t) => (seen.has(key(t)) ? false : (seen.add(key(t)), true)));
}

/** `--tasks niah_single,vt` (duplicates dropped, order kept). @throws `invalid_task`. */
export function parseTasks(value: string): TaskName[] {
  const out = splitList(value, 'tasks', 'invalid_task').map((t) => {
    if (!(TASKS as readonly string[]).includes(t)) throw new InvalidInputError('invalid_task', `unknown task "${t}": use ${TASKS.join(', ')}`, 'tasks');
    return t as TaskName;
  });
  return dedupe(out, String);
}

/** `--modes global,star`. @throws `invalid_mode`. */
export function parseModes(value: string): RulerMode[] {
  const out = splitList(value, 'modes', 'invalid_mode').map((m) => {
    if (!(RULER_MODES as readonly string[]).includes(m)) {
      const why = (MODES as readonly string[]).includes(m) ? ` (${m} attention is exact, like global)` : '';
      throw new InvalidInputError('invalid_mode', `--modes takes ${RULER_MODES.join(', ')}, got "${m}"${why}`, 'modes');
    }
    return m as RulerMode;
  });
  return dedupe(out, String);
}

/** `--lengths 1024,2048` (integers ≥ 1; range checks per task in {@link checkLengths}). @throws `invalid_length`. */
export function parseLengths(value: string): number[] {
  const out = splitList(value, 'lengths', 'invalid_length').map((p) => {
    const n = Number(p);
    if (!/^\d+$/.test(p) || !Number.isSafeInteger(n) || n < 1) throw new InvalidInputError('invalid_length', `--lengths must be integers ≥ 1 (comma-separated), got "${p}"`, 'lengths');
    return n;
  });
  return dedupe(out, String);
}

/** One size: integer ≥ min, `p/q` or a decimal in (0, 1]. */
function parseSize(p: string, flag: string, code: string, min: number): SizeSpec {
  const bad = (why: string) => new InvalidInputError(code, `--${flag}: "${p}" ${why}; use token counts (e.g. 256) or fractions of the length in (0, 1] (e.g. 1/4 or 0.25)`, flag);
  if (/^\d+$/.test(p)) {
    const n = Number(p);
    if (!Number.isSafeInteger(n) || n < min) throw bad(`must be ≥ ${min}`);
    return { kind: 'tokens', value: n, text: p };
  }
  const frac = /^(\d+)\/(\d+)$/.exec(p);
  const f = frac ? Number(frac[1]) / Number(frac[2]) : /^\d*\.\d+$/.test(p) ? Number(p) : NaN;
  if (Number.isNaN(f)) throw bad('is not a number or a fraction');
  if (!(f > 0 && f <= 1) || !Number.isFinite(f)) throw bad('is not a fraction in (0, 1]');
  return { kind: 'fraction', value: f, text: p };
}

/** `--block-size 1/4,1/8,512`. @throws `invalid_block_size`. */
export function parseBlockSpecs(value: string): SizeSpec[] {
  return dedupe(splitList(value, 'block-size', 'invalid_block_size').map((p) => parseSize(p, 'block-size', 'invalid_block_size', 1)), (s) => s.text);
}

/** `--anchor-size b,0,1/8`. @throws `invalid_anchor_size`. */
export function parseAnchorSpecs(value: string): AnchorSpec[] {
  const out = splitList(value, 'anchor-size', 'invalid_anchor_size').map((p): AnchorSpec => (p === 'b' || p === 'B' ? { kind: 'block', text: 'b' } : parseSize(p, 'anchor-size', 'invalid_anchor_size', 0)));
  return dedupe(out, (s) => s.text);
}

/** Tokens of a size at length L: the count, or ⌈f·L⌉. */
export function resolveSize(spec: SizeSpec, length: number): number {
  return spec.kind === 'tokens' ? spec.value : Math.max(1, Math.ceil(spec.value * length - 1e-9));
}

/** One mode cell of a (task, length): global, or Star with resolved block and anchor sizes. */
export interface ModeCell {
  mode: RulerMode;
  /** Star only: block size in tokens and the flag spelling it came from. */
  blockSize?: number;
  anchorSize?: number;
  block?: string;
  anchor?: string;
}

/**
 * The mode cells at length L, in flag order (global first when asked, then Star block-major), with
 * duplicate (b, a) pairs dropped. @throws `invalid_anchor_size` when an anchor exceeds its block.
 */
export function modeCells(modes: RulerMode[], blocks: SizeSpec[], anchors: AnchorSpec[], length: number): ModeCell[] {
  const cells: ModeCell[] = [];
  if (modes.includes('global')) cells.push({ mode: 'global' });
  if (!modes.includes('star')) return cells;
  for (const bs of blocks) {
    const b = resolveSize(bs, length);
    for (const as of anchors) {
      const a = as.kind === 'block' ? b : as.kind === 'tokens' ? as.value : resolveSize(as, length);
      if (a > b) {
        throw new InvalidInputError(
          'invalid_anchor_size',
          `--anchor-size ${as.text} (${a} tokens) is larger than --block-size ${bs.text} (${b} tokens) at length ${length}: anchors must satisfy a ≤ b (use "b" for an anchor equal to the block)`,
          'anchor-size',
        );
      }
      if (!cells.some((c) => c.mode === 'star' && c.blockSize === b && c.anchorSize === a)) cells.push({ mode: 'star', blockSize: b, anchorSize: a, block: bs.text, anchor: as.text });
    }
  }
  return cells;
}

/** `--max-new-tokens` if given, else the task's default. */
export function maxNewTokensFor(task: TaskName, override?: number): number {
  return override ?? TASK_SPECS[task].maxNewTokens;
}

/**
 * Every (task, length) must fit: L ≥ the task's minimum (`length_too_short`), and the prompt plus
 * the answer must fit the model's positions — L + maxNewTokens − 1 ≤ limit, since the last generated
 * token is never fed back (`length_too_long`, a CapacityError).
 */
export function checkLengths(tasks: TaskName[], lengths: number[], limit: number, maxNewTokens?: number): void {
  for (const task of tasks) {
    for (const L of lengths) {
      const min = TASK_SPECS[task].minLength;
      if (L < min) throw new InvalidInputError('length_too_short', `--lengths ${L} is shorter than ${task}'s minimum of ${min} tokens`, 'lengths');
      const gen = maxNewTokensFor(task, maxNewTokens);
      if (L + gen - 1 > limit) {
        const most = limit - gen + 1;
        const advice = most >= min ? `use at most ${most}, or lower --max-new-tokens` : `${task} needs at least ${min} prompt tokens, so it cannot run on this model with ${gen} answer tokens`;
        throw new CapacityError(
          'length_too_long',
          L > limit
            ? `--lengths ${L} exceeds the model's position limit (${limit})`
            : `--lengths ${L} leaves no room for ${task}'s ${gen} answer tokens within the model's position limit (${limit}): ${advice}`,
          'lengths',
        );
      }
    }
  }
}

/**
 * Hosts the local cluster needs: the most any Star cell uses at any length (L bounds the context,
 * so this is an upper bound), at least 1. Validates every plan (block ≥ 1, 0 ≤ a ≤ b, hosts ≥ 1).
 */
export function clusterHosts(cellsByLength: ModeCell[][], lengths: number[], hosts?: number): number {
  let max = 1;
  cellsByLength.forEach((cells, i) => {
    for (const c of cells) {
      if (c.mode !== 'star') continue;
      const plan = planMode('star', lengths[i], { blockSize: c.blockSize, anchorSize: c.anchorSize, hosts: hosts ?? null });
      max = Math.max(max, plan.effectiveHosts);
    }
  });
  return max;
}
