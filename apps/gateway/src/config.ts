/**
 * Gateway configuration, read from the environment once and validated as a whole (every bad
 * variable is reported in one error).
 *
 * | variable              | meaning                                                  | default                    |
 * | --------------------- | -------------------------------------------------------- | -------------------------- |
 * | STARQ_REDIS_URL       | Redis URL of the cluster                                 | redis://127.0.0.1:6379     |
 * | STARQ_PREFIX          | key prefix of the cluster                                | starq                      |
 * | STARQ_MODEL_DIR       | model directory (tokenizer, chat template, limits; required) |                        |
 * | STARQ_MODEL_ID        | model name clients use                                   | basename of the directory  |
 * | STARQ_GATEWAY_HOST    | address to listen on                                     | 127.0.0.1                  |
 * | STARQ_GATEWAY_PORT    | port (0 = any free port)                                 | 8080                       |
 * | STARQ_API_KEYS        | comma-separated API keys (empty = no authentication)     |                            |
 * | STARQ_ADMIN_KEY       | admin key (also accepted wherever an API key is)         |                            |
 * | STARQ_MAX_BODY_BYTES  | largest request body accepted (413 above)                | 16777216 (16 MiB)          |
 * | STARQ_MAX_QUEUE       | unfinished requests in the cluster above which new ones get 429 | 1024                |
 * | STARQ_GATEWAY_ID      | name of this gateway (logs)                              | gateway-<hostname>-<pid>   |
 * | STARQ_SSE_KEEPALIVE_MS | interval of the `: ping` comment on every SSE stream    | 15000                      |
 * | STARQ_SSE_RETRY_MS    | reconnection delay the job event stream advises (`retry:`) | 3000                    |
 * | STARQ_HISTORY_INTERVAL_MS | bucket width of the dashboard's one-hour history     | 5000                       |
 * | STARQ_DRAIN_TIMEOUT_MS | longest drain on SIGTERM (libs/cluster/src/lifecycle-config.ts) | 25000             |
 * | STARQ_ACTOR_WAIT_MS   | a job waiting this long for a missing query/host actor is failed | 60000              |
 * | STARQ_INTAKE_WORKERS  | worker threads that parse and tokenize request bodies    | 1                          |
 * | STARQ_INTAKE_QUEUE    | bodies waiting for an intake worker above which new ones get 503 | 64                 |
 * | STARQ_INTAKE_TIMEOUT_MS | longest an intake worker may spend on one body (422 after) | 30000                   |
 * | STARQ_INTAKE_MEMORY_MB | heap limit of each intake worker (422 when a body exhausts it) | 1024                 |
 *
 * Keys never appear in error messages or logs: only their count does.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { parseLifecycleConfig } from '@starq/cluster';
import { InvalidInputError } from '@starq/protocol';

export interface GatewayConfig {
  redisUrl: string;
  prefix: string;
  modelDir: string;
  modelId: string;
  host: string;
  port: number;
  apiKeys: string[];
  adminKey: string | null;
  maxBodyBytes: number;
  maxQueue: number;
  gatewayId: string;
  /** Interval of the keep-alive comment on SSE responses (ms). */
  sseKeepAliveMs: number;
  /** Reconnection delay advised to job event stream clients with `retry:` (ms). */
  sseRetryMs: number;
  /** Bucket width of the admin history (ms); one hour is kept. */
  historyIntervalMs: number;
  /** Longest drain on SIGTERM: open streams and requests get this long to finish (ms). */
  drainTimeoutMs: number;
  /** STARQ_EXIT_WITH_PARENT: drain and exit when the parent process exits. */
  exitWithParent: boolean;
  /** How long a job may wait for a missing query or host actor before it is failed (ms). */
  actorWaitMs: number;
  /** Intake worker threads (parse, validate, tokenize request bodies off the event loop). */
  intakeWorkers: number;
  /** Bodies waiting for an intake worker above which new ones get 503 `intake_busy`. */
  intakeQueue: number;
  /** Longest an intake worker may spend on one body (ms). */
  intakeTimeoutMs: number;
  /** Heap limit of each intake worker (MB). */
  intakeMemoryMb: number;
}

const intVar = (def: number, min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw.trim() === '') return def;
      const n = Number(raw);
      if (!/^\s*\d+\s*$/.test(raw) || !Number.isSafeInteger(n) || n < min || n > max) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `must be an integer in [${min}, ${max}] (got ${JSON.stringify(raw)})` });
        return z.NEVER;
      }
      return n;
    });

const keyList = z
  .string()
  .optional()
  .transform((raw, ctx) => {
    const keys = (raw ?? '')
      .split(',')
      .map((k) => k.trim())
      .filter((k) => k.length > 0);
    // Never echo a key: report positions only.
    keys.forEach((k, i) => {
      if (!/^[\x21-\x7e]+$/.test(k)) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `key #${i + 1} contains characters other than printable ASCII` });
    });
    return keys;
  });

const EnvSchema = z
  .object({
    STARQ_REDIS_URL: z
      .string()
      .optional()
      .transform((v) => v || 'redis://127.0.0.1:6379')
      .refine((v) => /^rediss?:\/\//.test(v), { message: 'must start with redis:// or rediss://' }),
    STARQ_PREFIX: z
      .string()
      .optional()
      .transform((v) => v || 'starq')
      .refine((v) => /^[A-Za-z0-9_.:-]+$/.test(v), { message: 'may only contain letters, digits and _ . : -' }),
    STARQ_MODEL_DIR: z
      .string({ required_error: 'is required (the Hugging Face model directory the cluster serves)' })
      .min(1, 'is required (the Hugging Face model directory the cluster serves)')
      .refine((d) => fs.existsSync(path.join(d, 'config.json')), { message: 'has no config.json' }),
    STARQ_MODEL_ID: z.string().optional(),
    STARQ_GATEWAY_HOST: z
      .string()
      .optional()
      .transform((v) => v || '127.0.0.1'),
    STARQ_GATEWAY_PORT: intVar(8080, 0, 65535),
    STARQ_API_KEYS: keyList,
    STARQ_ADMIN_KEY: z
      .string()
      .optional()
      .transform((v) => (v && v.trim() ? v.trim() : null))
      .refine((v) => v === null || /^[\x21-\x7e]+$/.test(v), { message: 'contains characters other than printable ASCII' }),
    STARQ_MAX_BODY_BYTES: intVar(16 * 1024 * 1024, 1024),
    STARQ_MAX_QUEUE: intVar(1024, 0),
    STARQ_GATEWAY_ID: z.string().optional(),
    STARQ_SSE_KEEPALIVE_MS: intVar(15000, 100, 3600000),
    STARQ_SSE_RETRY_MS: intVar(3000, 0, 3600000),
    STARQ_HISTORY_INTERVAL_MS: intVar(5000, 200, 600000),
    STARQ_ACTOR_WAIT_MS: intVar(60000, 100, 7 * 24 * 3600 * 1000),
    STARQ_INTAKE_WORKERS: intVar(1, 1, 64),
    STARQ_INTAKE_QUEUE: intVar(64, 0),
    STARQ_INTAKE_TIMEOUT_MS: intVar(30000, 100, 3600000),
    STARQ_INTAKE_MEMORY_MB: intVar(1024, 64, 65536),
  })
  .superRefine((v, ctx) => {
    if (v.STARQ_ADMIN_KEY !== null && v.STARQ_API_KEYS.includes(v.STARQ_ADMIN_KEY)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['STARQ_ADMIN_KEY'], message: 'must differ from every key in STARQ_API_KEYS' });
    }
  });

/** @throws InvalidInputError `invalid_config` listing every bad variable. */
export function parseGatewayConfig(env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const r = EnvSchema.safeParse(env);
  const lifecycleProblems: string[] = [];
  const { drainTimeoutMs, exitWithParent } = parseLifecycleConfig(env, lifecycleProblems);
  if (!r.success || lifecycleProblems.length > 0) {
    const problems = [...(r.success ? [] : r.error.issues.map((i) => `${i.path.join('.') || 'environment'} ${i.message}`)), ...lifecycleProblems];
    throw new InvalidInputError('invalid_config', `invalid gateway configuration:\n  - ${problems.join('\n  - ')}`, 'env');
  }
  const v = r.data!;
  return {
    redisUrl: v.STARQ_REDIS_URL,
    prefix: v.STARQ_PREFIX,
    modelDir: v.STARQ_MODEL_DIR,
    modelId: v.STARQ_MODEL_ID || path.basename(path.resolve(v.STARQ_MODEL_DIR)),
    host: v.STARQ_GATEWAY_HOST,
    port: v.STARQ_GATEWAY_PORT,
    apiKeys: v.STARQ_API_KEYS,
    adminKey: v.STARQ_ADMIN_KEY,
    maxBodyBytes: v.STARQ_MAX_BODY_BYTES,
    maxQueue: v.STARQ_MAX_QUEUE,
    gatewayId: v.STARQ_GATEWAY_ID || `gateway-${os.hostname()}-${process.pid}`,
    sseKeepAliveMs: v.STARQ_SSE_KEEPALIVE_MS,
    sseRetryMs: v.STARQ_SSE_RETRY_MS,
    historyIntervalMs: v.STARQ_HISTORY_INTERVAL_MS,
    drainTimeoutMs,
    exitWithParent,
    actorWaitMs: v.STARQ_ACTOR_WAIT_MS,
    intakeWorkers: v.STARQ_INTAKE_WORKERS,
    intakeQueue: v.STARQ_INTAKE_QUEUE,
    intakeTimeoutMs: v.STARQ_INTAKE_TIMEOUT_MS,
    intakeMemoryMb: v.STARQ_INTAKE_MEMORY_MB,
  };
}
