/**
 * `starq eval …`: the parent of the evaluation subcommands (`fidelity`, later `ruler`, …). Each
 * subcommand attaches itself with `evalCommand(program).command('name')`; the group is created
 * once, by whichever registers first.
 */
import type { Command } from 'commander';
import { InvalidInputError } from '@starq/protocol/errors';

export function evalCommand(program: Command): Command {
  const existing = program.commands.find((c) => c.name() === 'eval');
  if (existing) return existing;
  const group: Command = program
    .command('eval')
    .description('evaluate Star Attention against exact attention (see `starq eval <command> --help`)')
    // Runs only when no known subcommand is named.
    .action((_opts: unknown, cmd: Command) => {
      const names = group.commands.map((c) => c.name()).join(' | ');
      const given = cmd.args[0];
      if (given !== undefined) throw new InvalidInputError('unknown_command', `unknown eval command "${given}": use ${names} (see starq eval --help)`, 'eval');
      throw new InvalidInputError('missing_subcommand', `starq eval needs a subcommand: ${names} (see starq eval --help)`, 'eval');
    });
  return group;
}
