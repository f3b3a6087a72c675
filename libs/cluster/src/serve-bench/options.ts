/**
 * Options of the serving benchmark (`starq bench serve`, `bench/serve.ts`): flags as given on a
 * command line, their defaults, and their validation — every bad flag reported in one error, with
 * a code and the flag as `param`.
 */
import { InvalidInputError } from '@starq/protocol/errors';

/**
 * How phase 2 is served, per variant:
 *   batched                   the running set in one step per token, each host's attention items
 *                             in shared ORT calls (STARQ_BATCHING=1, STARQ_ATTEND_BATCHING=1)
 *   batched-attn-per-request  the same steps, every attention item in its own ORT calls
 *                             (STARQ_ATTEND_BATCHING=0: the per-request reference path)
 *   unbatched                 each request its own steps, run concurrently (STARQ_BATCHING=0)
 */
export const SERVE_VARIANTS = ['batched', 'batched-attn-per-request', 'unbatched'] as const;
export type ServeVariant = (typeof SERVE_VARIANTS)[number];

/**
 * Where it runs: `cluster` = real processes on Redis (hosts, 1 query actor); `in-process` =
 * `LocalCluster` (engines in worker threads of the benchmark), which also gives the step-time
 * table (step median vs batch size).
 */
export const SERVE_SETTINGS = ['cluster', 'in-process'] as const;
export type ServeSetting = (typeof SERVE_SETTINGS)[number];

/** The flags, as strings (commander's values, or `bench/serve.ts`'s argv). */
export interface ServeBenchFlags {
  concurrency?: string;
  context?: string;
  queryTokens?: string;
  newTokens?: string;
  stepTokens?: string;
  hosts?: string;
  randomModel?: string;
  variants?: string;
  settings?: string;
  rounds?: string;
  redis?: string;
}

/** Defaults of `ServeBenchFlags` (the `--help` text shows them). */
export const SERVE_BENCH_DEFAULTS: Required<Omit<ServeBenchFlags, 'redis'>> = {
  concurrency: '1,2,4,8,16',
  context: '4096',
  queryTokens: '16',
  newTokens: '128',
  stepTokens: '32',
  hosts: '2',
  randomModel: 'hidden=256,layers=4,heads=8,kv-heads=2',
  variants: SERVE_VARIANTS.join(','),
  settings: SERVE_SETTINGS.join(','),
  rounds: '3',
};

export interface ServeModelShape {
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
}

export interface ServeBenchOptions {
  /** Concurrency levels C: C requests on C distinct documents at once. */
  concurrency: number[];
  /** Tokens per document (Star, b = ⌈context / hosts⌉, each document encoded before it is measured). */
  context: number;
  queryTokens: number;
  /** Tokens each request generates (greedy, EOS ignored). */
  newTokens: number;
  /** Tokens per request in the in-process setting (steps and latencies). */
  stepTokens: number;
  hosts: number;
  /** The random Llama's shape (vocab 512). */
  model: ServeModelShape;
  variants: ServeVariant[];
  settings: ServeSetting[];
  /** Runs of every (level, variant), alternated; the round with the highest decode tok/s is reported. */
  rounds: number;
  /** Redis of the cluster setting. @defaultValue redis://127.0.0.1:6379 */
  redisUrl: string;
}

export function parseServeBenchFlags(f: ServeBenchFlags): ServeBenchOptions {
  const v = { ...SERVE_BENCH_DEFAULTS, ...Object.fromEntries(Object.entries(f).filter(([, x]) => x !== undefined)) } as Required<ServeBenchFlags>;
  const problems: { code: string; param: string; message: string }[] = [];
  const bad = (code: string, param: string, message: string) => problems.push({ code, param, message });
  const posInt = (param: string, raw: string, min = 1): number => {
    const n = Number(raw);
    if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min) bad('invalid_flag', param, `--${param}: "${raw}" is not an integer ≥ ${min}`);
    return n;
  };
  const list = (s: string) => s.split(',').map((x) => x.trim());
  const oneOf = <T extends string>(param: string, raw: string, known: readonly T[]): T[] => {
    const out: T[] = [];
    for (const x of list(raw)) {
      if (!(known as readonly string[]).includes(x)) bad('invalid_flag', param, `--${param}: unknown value "${x}" (use ${known.join(', ')})`);
      else if (!out.includes(x as T)) out.push(x as T);
    }
    return out;
  };
  const concurrency = [...new Set(list(v.concurrency).map((c) => posInt('concurrency', c)))];
  const hosts = posInt('hosts', v.hosts);
  const context = posInt('context', v.context, 2);
  if (Number.isSafeInteger(hosts) && Number.isSafeInteger(context) && context < 2 * hosts) bad('invalid_flag', 'context', `--context: ${context} tokens cannot fill ${hosts} hosts' blocks (need ≥ ${2 * hosts})`);
  const model: Partial<ServeModelShape> = {};
  for (const part of list(v.randomModel)) {
    const m = /^(hidden|layers|heads|kv-heads)=(\d+)$/.exec(part);
    if (!m || Number(m[2]) < 1) bad('invalid_random_model', 'random-model', `--random-model: "${part}" is not one of hidden|layers|heads|kv-heads=<integer ≥ 1>`);
    else model[m[1] === 'kv-heads' ? 'kvHeads' : (m[1] as keyof ServeModelShape)] = Number(m[2]);
  }
  const { hidden, layers, heads, kvHeads } = model;
  if (!hidden || !layers || !heads || !kvHeads) bad('invalid_random_model', 'random-model', '--random-model needs hidden=H,layers=L,heads=Q,kv-heads=K');
  else if (hidden % heads !== 0 || heads % kvHeads !== 0 || (hidden / heads) % 2 !== 0) bad('invalid_random_model', 'random-model', `--random-model: hidden (${hidden}) must be a multiple of heads (${heads}) with an even head size, heads a multiple of kv-heads (${kvHeads})`);
  const opts: ServeBenchOptions = {
    concurrency,
    context,
    queryTokens: posInt('query-tokens', v.queryTokens),
    newTokens: posInt('new-tokens', v.newTokens, 2),
    stepTokens: posInt('step-tokens', v.stepTokens, 2),
    hosts,
    model: model as ServeModelShape,
    variants: oneOf('variants', v.variants, SERVE_VARIANTS),
    settings: oneOf('settings', v.settings, SERVE_SETTINGS),
    rounds: posInt('rounds', v.rounds),
    redisUrl: v.redis ?? 'redis://127.0.0.1:6379',
  };
  if (!/^rediss?:\/\//.test(opts.redisUrl)) bad('invalid_flag', 'redis', `--redis: "${opts.redisUrl}" is not a redis:// or rediss:// URL`);
  if (problems.length > 0) {
    throw new InvalidInputError(problems[0].code, problems.map((p) => p.message).join('; '), problems[0].param);
  }
  return opts;
}
