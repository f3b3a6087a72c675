/**
 * Child-process program for the engine shutdown tests (run through tsx by test/cli-exit.e2e.ts),
 * configured by ENGINE_EXIT_MODE, ENGINE_EXIT_MODEL and ENGINE_EXIT_TOKENS (its arguments are
 * padding, to give the process a long command line):
 *
 *   busy-error MODEL_DIR T   three engines; two run a T-token forward while the third gets an
 *                            out-of-vocabulary id and fails at once; the error path closes every
 *                            engine and exits 2 (never 134).
 *   load MODEL_DIR           starts one engine and exits 0 (with a long argv it must refuse with
 *                            `command_line_too_long` and exit 3, never SIGSEGV).
 */
import { closeAllEngines, liveEngineCount, ModelEngine } from '@starq/model/runtime/engine';
import { loadConfig } from '@starq/model/config';
import { StarqError } from '@starq/protocol/errors';

async function busyError(dir: string, T: number): Promise<number> {
  const config = loadConfig(dir);
  const engines = await Promise.all([0, 1, 2].map(() => ModelEngine.load(dir, config, { threads: 1 })));
  const ids = Int32Array.from({ length: T }, (_, i) => (i * 7 + 3) % config.vocabSize);
  const positions = Int32Array.from({ length: T }, (_, i) => i);
  try {
    await Promise.all([
      engines[0].forward({ cacheId: 'a', ids, positions }),
      engines[1].forward({ cacheId: 'a', ids, positions }),
      engines[2].forward({ cacheId: 'b', ids: Int32Array.of(config.vocabSize), positions: Int32Array.of(0) }),
    ]);
    return 0;
  } catch (e) {
    if (!(e instanceof StarqError) || e.code !== 'invalid_token_id') throw e;
    await closeAllEngines();
    if (liveEngineCount() !== 0) throw new Error(`${liveEngineCount()} engines still open after closeAllEngines()`);
    return 2;
  }
}

async function load(dir: string): Promise<number> {
  try {
    const e = await ModelEngine.load(dir, loadConfig(dir), { threads: 1 });
    await e.close();
    return 0;
  } catch (e) {
    if (e instanceof StarqError && e.code === 'command_line_too_long') {
      process.stderr.write(`[${e.code}] ${e.message}\n`);
      return 3;
    }
    throw e;
  }
}

const dir = process.env.ENGINE_EXIT_MODEL!;
(process.env.ENGINE_EXIT_MODE === 'busy-error' ? busyError(dir, Number(process.env.ENGINE_EXIT_TOKENS)) : load(dir)).then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`${(e as Error).stack}\n`);
    process.exit(1);
  },
);
