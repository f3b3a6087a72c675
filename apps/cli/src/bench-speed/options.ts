/**
 * Flags of `starq bench speed`, parsed and validated once: every problem found is reported
 * together (one InvalidInputError naming the first flag, the message listing all), before any
 * engine starts.
 */
import os from 'node:os';
import { MODES, type Mode } from '@starq/attention';
import { InvalidInputError } from '@starq/protocol/errors';

/** The shape of a generated random Llama checkpoint (`--random-model`). */
export interface RandomModelSpec {
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  /** @defaultValue ⌈8·hidden/3 / 16⌉·16 (Llama's SwiGLU width rounded to 16; 688 for hidden 256) */
  intermediate: number;
  /** @defaultValue 512 */
  vocab: number;
}

/** A block size given as tokens (`1024`) or as a fraction of the context (`1/4`, `0.25`). */
export type BlockSizeSpec = { tokens: number; label: string } | { fraction: number; label: string };
/** The anchor: the block size (`b`, the default), tokens, or a fraction of the context. */
export type AnchorSpec = { sameAsBlock: true; label: string } | { tokens: number; label: string } | { fraction: number; label: string };

export interface SpeedOptions {
  model: { dir: string } | { random: RandomModelSpec };
  contexts: number[];
  modes: Mode[];
  blockSizes: BlockSizeSpec[];
  anchor: AnchorSpec;
  hosts: number[];
  cluster: boolean;
  redisUrl: string | undefined;
  /** Redis key prefix of --cluster (null: random). */
  prefix: string | null;
  /** Total ORT threads: one engine gets all of them; H host engines get ⌊threads/H⌋ each. */
  threads: number;
  /**
   * Run Global at this context only (measured) and predict its phase-1 time at every other context
   * from FLOPs and that measured rate (`--predict-global-from`); null: Global runs where --modes says.
   * @defaultValue null
   */
  predictGlobalFrom: number | null;
  /** Rows per qkv/post/head ORT call of every engine (`ExecutorOptions.maxRowsPerCall`); null: the engine default. @defaultValue null */
  maxRowsPerCall: number | null;
  queryTokens: number;
  newTokens: number;
  seed: number;
  json: string | null;
  plots: string | null;
  markdown: boolean;
}

export interface SpeedFlags {
  model?: string;
  randomModel?: string;
  contexts: string;
  modes: string;
  blockSizes: string;
  anchorSize: string;
  hosts?: string;
  cluster?: boolean;
  redis?: string;
  prefix?: string;
  threads?: string;
  predictGlobalFrom?: string;
  maxRowsPerCall?: string;
  queryTokens: string;
  newTokens: string;
  seed: string;
  json?: string | boolean;
  plots?: string;
  markdown?: boolean;
}

interface Problem {
  code: string;
  param: string;
  message: string;
}

const INT = /^\d+$/;

/** A token count: `4096`, `4K`, `1M` (what `parseTokenCount` reads). */
const TOKEN_COUNT = /^\d+[kKmM]?$/;

/** `4096`, `4K`/`4k` (= 4096), `1M` (= 1048576). */
export function parseTokenCount(s: string): number | null {
  const m = /^(\d+)([kKmM]?)$/.exec(s.trim());
  if (!m) return null;
  const mult = m[2] === '' ? 1 : m[2].toLowerCase() === 'k' ? 1024 : 1024 * 1024;
  const n = Number(m[1]) * mult;
  return Number.isSafeInteger(n) ? n : null;
}

/** `1/4` or `0.25` → 0.25; null when not a fraction in (0, 1]. */
function parseFraction(s: string): number | null {
  const t = s.trim();
  let f: number;
  const m = /^(\d+)\/(\d+)$/.exec(t);
  if (m) f = Number(m[1]) / Number(m[2]);
  else if (/^0?\.\d+$|^1(\.0*)?$/.test(t)) f = Number(t);
  else return null;
  return Number.isFinite(f) && f > 0 && f <= 1 ? f : null;
}

function list(s: string): string[] {
  return s.split(',').map((x) => x.trim());
}

export function defaultIntermediate(hidden: number): number {
  return Math.ceil((8 * hidden) / 3 / 16) * 16;
}

export function parseRandomModel(spec: string, problems: Problem[]): RandomModelSpec | null {
  const known = ['hidden', 'layers', 'heads', 'kv-heads', 'intermediate', 'vocab'];
  const vals: Record<string, number> = {};
  const bad = (message: string) => problems.push({ code: 'invalid_random_model', param: 'random-model', message: `--random-model: ${message}` });
  for (const part of list(spec)) {
    const m = /^([a-z-]+)=(\d+)$/.exec(part);
    if (!m) {
      bad(`"${part}" is not key=integer (expected hidden=H,layers=L,heads=Q,kv-heads=K[,intermediate=I][,vocab=V])`);
      continue;
    }
    if (!known.includes(m[1])) bad(`unknown key "${m[1]}" (known: ${known.join(', ')})`);
    else vals[m[1]] = Number(m[2]);
  }
  for (const k of ['hidden', 'layers', 'heads', 'kv-heads']) if (vals[k] === undefined) bad(`${k} is required`);
  for (const [k, v] of Object.entries(vals)) if (v < 1) bad(`${k} must be ≥ 1, got ${v}`);
  if (vals.heads && vals.hidden && vals.hidden % vals.heads !== 0) bad(`hidden (${vals.hidden}) must be a multiple of heads (${vals.heads})`);
  if (vals.heads && vals['kv-heads'] && vals.heads % vals['kv-heads'] !== 0) bad(`heads (${vals.heads}) must be a multiple of kv-heads (${vals['kv-heads']})`);
  if (vals.vocab !== undefined && vals.vocab < 8) bad(`vocab must be ≥ 8, got ${vals.vocab}`);
  if (problems.some((p) => p.param === 'random-model')) return null;
  return {
    hidden: vals.hidden,
    layers: vals.layers,
    heads: vals.heads,
    kvHeads: vals['kv-heads'],
    intermediate: vals.intermediate ?? defaultIntermediate(vals.hidden),
    vocab: vals.vocab ?? 512,
  };
}

export function parseSpeedFlags(f: SpeedFlags): SpeedOptions {
  const problems: Problem[] = [];
  const push = (code: string, param: string, message: string) => problems.push({ code, param, message });

  let model: SpeedOptions['model'] | null = null;
  if (f.model !== undefined && f.randomModel !== undefined) push('conflicting_flags', 'model', 'give --model DIR or --random-model SPEC, not both');
  else if (f.model !== undefined) model = { dir: f.model };
  else if (f.randomModel !== undefined) {
    const r = parseRandomModel(f.randomModel, problems);
    if (r) model = { random: r };
  } else push('missing_flag', 'model', 'a model is required: --model DIR or --random-model hidden=H,layers=L,heads=Q,kv-heads=K');

  const contexts: number[] = [];
  for (const c of list(f.contexts)) {
    const n = parseTokenCount(c);
    if (n === null || n < 2) push('invalid_flag', 'contexts', `--contexts: "${c}" is not a token count ≥ 2 (e.g. 4096 or 4K)`);
    else contexts.push(n);
  }

  const modes: Mode[] = [];
  for (const m of list(f.modes)) {
    if ((MODES as readonly string[]).includes(m)) {
      if (!modes.includes(m as Mode)) modes.push(m as Mode);
    } else push('invalid_mode', 'modes', `--modes: unknown mode "${m}" (use ${MODES.join(', ')})`);
  }

  const blockSizes: BlockSizeSpec[] = [];
  for (const b of list(f.blockSizes)) {
    if (TOKEN_COUNT.test(b)) {
      const n = parseTokenCount(b);
      if (n === null || n < 1) push('invalid_block_size', 'block-sizes', `--block-sizes: "${b}" must be ≥ 1`);
      else blockSizes.push({ tokens: n, label: String(n) });
    } else {
      const fr = parseFraction(b);
      if (fr === null) push('invalid_block_size', 'block-sizes', `--block-sizes: "${b}" is neither a token count nor a fraction in (0, 1] like 1/4`);
      else blockSizes.push({ fraction: fr, label: b.includes('/') ? `N${b.slice(b.indexOf('/'))}` : `${b}·N` });
    }
  }

  let anchor: AnchorSpec = { sameAsBlock: true, label: 'b' };
  const a = f.anchorSize.trim();
  if (a === 'b') anchor = { sameAsBlock: true, label: 'b' };
  else if (TOKEN_COUNT.test(a)) {
    const n = parseTokenCount(a);
    if (n === null) push('invalid_anchor_size', 'anchor-size', `--anchor-size: "${a}" is too large`);
    else anchor = { tokens: n, label: String(n) };
  }
  else {
    const fr = parseFraction(a);
    if (fr === null) push('invalid_anchor_size', 'anchor-size', `--anchor-size: "${a}" must be "b", a token count or a fraction like 1/8`);
    else anchor = { fraction: fr, label: `N${a.includes('/') ? a.slice(a.indexOf('/')) : `·${a}`}` };
  }

  const int = (v: string | undefined, flag: string, min: number): number | undefined => {
    if (v === undefined) return undefined;
    if (!INT.test(v.trim()) || Number(v) < min) {
      push('invalid_flag', flag, `--${flag} must be an integer ≥ ${min}, got "${v}"`);
      return undefined;
    }
    return Number(v);
  };
  const cores = Math.max(1, os.availableParallelism());
  const hosts: number[] = [];
  for (const h of list(f.hosts ?? String(Math.min(4, cores)))) {
    const n = int(h, 'hosts', 1);
    if (n !== undefined && !hosts.includes(n)) hosts.push(n);
  }
  const threads = int(f.threads, 'threads', 1) ?? cores;
  const maxRowsPerCall = int(f.maxRowsPerCall, 'max-rows-per-call', 1) ?? null;
  const queryTokens = int(f.queryTokens, 'query-tokens', 1) ?? 1;
  const newTokens = int(f.newTokens, 'new-tokens', 1) ?? 1;
  const seed = int(f.seed, 'seed', 0) ?? 0;
  let predictGlobalFrom: number | null = null;
  if (f.predictGlobalFrom !== undefined) {
    const n = parseTokenCount(f.predictGlobalFrom);
    if (n === null || n < 2) push('invalid_flag', 'predict-global-from', `--predict-global-from: "${f.predictGlobalFrom}" is not a token count ≥ 2 (e.g. 64K)`);
    else if (modes.includes('global')) push('conflicting_flags', 'predict-global-from', '--predict-global-from runs Global at one context and predicts it at the others: drop global from --modes');
    else predictGlobalFrom = n;
  }
  if (f.redis !== undefined && !f.cluster) push('invalid_flag', 'redis', '--redis only applies with --cluster');
  if (f.prefix !== undefined && !f.cluster) push('invalid_flag', 'prefix', '--prefix only applies with --cluster');
  if (f.prefix !== undefined && !/^[A-Za-z0-9_.:-]+$/.test(f.prefix)) push('invalid_flag', 'prefix', `--prefix must be letters, digits, _ . : - (got "${f.prefix}")`);
  if (modes.some((m) => m === 'star') && blockSizes.length === 0 && !problems.some((p) => p.param === 'block-sizes')) push('invalid_block_size', 'block-sizes', '--block-sizes: star mode needs at least one block size');
  if (f.json === '') push('invalid_flag', 'json', '--json needs a file name (or - for stdout)');

  if (problems.length > 0) {
    const message = problems.length === 1 ? problems[0].message : `invalid flags: ${problems.map((p) => p.message).join('; ')}`;
    throw new InvalidInputError(problems[0].code, message, problems[0].param);
  }
  return {
    model: model!,
    contexts,
    modes,
    blockSizes,
    anchor,
    hosts,
    cluster: !!f.cluster,
    redisUrl: f.redis,
    prefix: f.prefix ?? null,
    threads,
    predictGlobalFrom,
    maxRowsPerCall,
    queryTokens,
    newTokens,
    seed,
    json: typeof f.json === 'string' ? f.json : f.json ? '-' : null,
    plots: f.plots ?? null,
    markdown: !!f.markdown,
  };
}

/** The block size of a spec at context N (a fraction rounds up, as ⌈N·f⌉). */
export function resolveBlockSize(spec: BlockSizeSpec, N: number): number {
  return 'tokens' in spec ? spec.tokens : Math.max(1, Math.ceil(N * spec.fraction));
}

/** The anchor size at context N for block size b. */
export function resolveAnchorSize(spec: AnchorSpec, N: number, b: number): number {
  if ('sameAsBlock' in spec) return b;
  return 'tokens' in spec ? spec.tokens : Math.max(0, Math.ceil(N * spec.fraction));
}
