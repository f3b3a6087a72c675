/**
 * Process lifecycle settings shared by every starq process (host actor, query actor, gateway),
 * read from the environment with the rest of each process's configuration.
 *
 * | variable               | meaning                                                         | default     |
 * | ---------------------- | --------------------------------------------------------------- | ----------- |
 * | STARQ_HEALTH_PORT      | actors: port of /health, /ready, /metrics (0 = any free port)    | 0           |
 * | STARQ_HEALTH_HOST      | actors: address the health server listens on                    | 127.0.0.1   |
 * | STARQ_DRAIN_TIMEOUT_MS | how long a drain (SIGTERM or a drain command) may take before   | 25000       |
 * |                        | the process exits anyway; keep it below the pod's               |             |
 * |                        | terminationGracePeriodSeconds minus its preStop time            |             |
 * | STARQ_EXIT_WITH_PARENT | 1: drain and exit when the parent process exits (set by the     | 0           |
 * |                        | local launchers — `cluster up`, benchmarks — so their actors     |             |
 * |                        | never outlive a launcher that was killed); 0 under Kubernetes   |             |
 *
 * The gateway serves its probes on its own HTTP port (STARQ_GATEWAY_PORT) and ignores the two
 * STARQ_HEALTH_* variables.
 */
export interface LifecycleConfig {
  /** Port of the actor's health server; 0 picks a free port (printed at start). */
  healthPort: number;
  /** Listen address of the actor's health server. */
  healthHost: string;
  /** Longest drain before the process exits anyway (ms). */
  drainTimeoutMs: number;
  /** Drain and exit when the parent process exits. @defaultValue false */
  exitWithParent: boolean;
}

/** Default drain timeout: Kubernetes' default grace period (30 s) less a 5 s margin. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 25000;

/**
 * Reads the lifecycle variables; every problem is appended to `problems` (the caller reports all
 * of its variables together).
 */
export function parseLifecycleConfig(env: NodeJS.ProcessEnv, problems: string[]): LifecycleConfig {
  const int = (name: string, def: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === '') return def;
    const n = Number(raw);
    if (!/^\s*\d+\s*$/.test(raw) || !Number.isSafeInteger(n) || n < min || n > max) {
      problems.push(`${name} must be an integer in [${min}, ${max}] (got ${JSON.stringify(raw)})`);
      return def;
    }
    return n;
  };
  const healthHost = (env.STARQ_HEALTH_HOST ?? '').trim() || '127.0.0.1';
  if (/\s|\//.test(healthHost)) problems.push(`STARQ_HEALTH_HOST must be an address or host name (got ${JSON.stringify(env.STARQ_HEALTH_HOST)})`);
  const exitRaw = (env.STARQ_EXIT_WITH_PARENT ?? '').trim();
  if (!['', '0', '1'].includes(exitRaw)) problems.push(`STARQ_EXIT_WITH_PARENT must be 0 or 1 (got ${JSON.stringify(env.STARQ_EXIT_WITH_PARENT)})`);
  return {
    exitWithParent: exitRaw === '1',
    healthPort: int('STARQ_HEALTH_PORT', 0, 0, 65535),
    healthHost,
    drainTimeoutMs: int('STARQ_DRAIN_TIMEOUT_MS', DEFAULT_DRAIN_TIMEOUT_MS, 0, 24 * 3600 * 1000),
  };
}
