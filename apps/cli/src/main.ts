/**
 * The `starq` command line. Exit codes: 0 success, 2 bad input (one clear line on stderr),
 * 1 internal failure, 130 / 143 interrupted by SIGINT / SIGTERM. Whatever the outcome, every model
 * engine the command started is shut down before `main()` returns (see ./interrupt.ts and
 * `ModelEngine.close`).
 */
import { Command, CommanderError } from 'commander';
import { closeAllEngines } from '@starq/model/runtime/engine';
import { StarqError } from '@starq/protocol/errors';
import { CommandInterrupt } from './interrupt';
import { registerGenerate } from './commands/generate';
import { registerInspect } from './commands/inspect';
import { registerEvalFidelity } from './commands/eval-fidelity';
import { registerEvalRuler } from './commands/eval-ruler';
import { registerDemo } from './commands/demo';
import { registerCluster } from './commands/cluster';
import { registerSubmit } from './commands/submit';
import { registerBench } from './commands/bench';
import { registerBenchServe } from './commands/bench-serve';

export function buildProgram(): Command {
  const program = new Command('starq')
    .description('distributed long-context LLM inference with Star Attention')
    .showHelpAfterError(false)
    // Usage errors are printed by main() as one line with an error code, like every other bad input.
    .configureOutput({ outputError: () => undefined })
    .exitOverride()
    .addHelpText(
      'after',
      '\nExit codes (every command): 0 success; 2 bad input (one stderr line: starq: error [code] (flag): message); ' +
        '1 internal failure; 130 / 143 stopped by SIGINT / SIGTERM after every engine stopped (cluster up: 0 once stopped).\n',
    );
  registerGenerate(program);
  registerInspect(program);
  registerEvalFidelity(program);
  registerEvalRuler(program);
  registerDemo(program);
  registerCluster(program);
  registerSubmit(program);
  registerBench(program);
  registerBenchServe(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const interrupt = CommandInterrupt.install();
  let code: number;
  try {
    code = await run(argv, interrupt);
  } finally {
    await closeAllEngines(); // no engine outlives the command, whatever its outcome
    await interrupt.uninstall();
  }
  return interrupt.exitCode ?? code;
}

async function run(argv: string[], interrupt: CommandInterrupt): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (interrupt.interrupted) {
      process.stderr.write(`starq: error [interrupted]: stopped by ${interrupt.received}\n`);
      return 1; // main() answers 128 + the signal number
    }
    if (e instanceof CommanderError) {
      if (e.exitCode === 0) return 0; // --help, --version
      process.stderr.write(`starq: error [${commanderCode(e.code)}]: ${e.message.replace(/^error: /, '').split('\n')[0]}\n`);
      return 2;
    }
    if (e instanceof StarqError) {
      process.stderr.write(`starq: error [${e.code}]${e.param ? ` (${e.param})` : ''}: ${e.message}\n`);
      return e.status >= 500 ? 1 : 2; // 2 = the user's input is at fault
    }
    process.stderr.write(`starq: internal error: ${(e as Error).stack ?? e}\n`);
    return 1;
  }
}

/** Commander's usage-error codes (`commander.unknownOption`, …) as starq error codes. */
function commanderCode(code: string): string {
  const map: Record<string, string> = {
    'commander.unknownOption': 'unknown_flag',
    'commander.unknownCommand': 'unknown_command',
    'commander.excessArguments': 'unexpected_argument',
    'commander.missingArgument': 'missing_argument',
    'commander.optionMissingArgument': 'missing_flag_value',
    'commander.missingMandatoryOptionValue': 'missing_flag',
    'commander.invalidArgument': 'invalid_flag',
    'commander.conflictingOption': 'conflicting_flags',
  };
  return map[code] ?? 'invalid_usage';
}
