/**
 * The `starq` command line. Exit codes: 0 success, 2 bad input (one clear line on stderr),
 * 1 internal failure.
 */
import { Command, CommanderError } from 'commander';
import { StarqError } from '@starq/protocol/errors';
import { registerGenerate } from './commands/generate';
import { registerInspect } from './commands/inspect';

export function buildProgram(): Command {
  const program = new Command('starq')
    .description('distributed long-context LLM inference with Star Attention')
    .showHelpAfterError(false)
    .exitOverride();
  registerGenerate(program);
  registerInspect(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.exitCode === 0) return 0; // --help, --version
      return 2; // commander already printed its one-line error
    }
    if (e instanceof StarqError) {
      process.stderr.write(`starq: error [${e.code}]${e.param ? ` (${e.param})` : ''}: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`starq: internal error: ${(e as Error).stack ?? e}\n`);
    return 1;
  }
}
