/**
 * The flags every command that talks to a cluster spells the same way (`--redis URL`,
 * `--prefix P`), and the "Environment:" section that lists, in a command's --help, every
 * environment variable the command reads.
 */
import type { Command } from 'commander';

/** Environment variable with the default Redis key prefix of a cluster. */
export const PREFIX_ENV = 'STARQ_PREFIX';
/** The key prefix when neither --prefix nor STARQ_PREFIX is given. */
export const DEFAULT_PREFIX = 'starq';

/** Redis of a cluster when --redis is not given (commands that reach an existing cluster). */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** `--prefix` value when the flag is absent: STARQ_PREFIX, else "starq". */
export function defaultPrefix(): string {
  return process.env[PREFIX_ENV] || DEFAULT_PREFIX;
}

/** Help line of `--prefix` on commands that reach an existing cluster. */
export const PREFIX_HELP = `Redis key prefix of the cluster (default: $${PREFIX_ENV}, else "${DEFAULT_PREFIX}")`;

/** One environment variable a command reads, and what for. */
export type EnvVar = readonly [name: string, meaning: string];

export const PREFIX_VAR: EnvVar = [PREFIX_ENV, 'default of --prefix'];

/** Appends an "Environment:" section listing `vars` to the command's --help. */
export function envHelp(cmd: Command, vars: readonly EnvVar[]): Command {
  if (vars.length === 0) return cmd;
  const width = Math.max(...vars.map(([n]) => n.length));
  return cmd.addHelpText('after', `\nEnvironment:\n${vars.map(([n, m]) => `  ${n.padEnd(width)}  ${m}`).join('\n')}\n`);
}
