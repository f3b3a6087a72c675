/**
 * Seeded token ids for synthetic contexts and queries (tests, benchmarks, `starq bench speed`):
 * the same (n, vocab, seed, firstId) give the same ids on every machine.
 */
import { mulberry32 } from './random-checkpoint';

/**
 * `n` pseudo-random token ids in [firstId, vocab), from mulberry32(seed). `firstId` keeps special
 * tokens out (3 skips `<unk>`, `<s>`, `</s>` of the synthetic tokenizer).
 * @param firstId - @defaultValue 0
 */
export function randomTokenIds(n: number, vocab: number, seed: number, firstId = 0): number[] {
  if (!Number.isInteger(vocab) || !Number.isInteger(firstId) || firstId < 0 || firstId >= vocab) {
    throw new RangeError(`randomTokenIds: need integers 0 ≤ firstId < vocab (got firstId ${firstId}, vocab ${vocab})`);
  }
  const rand = mulberry32(seed);
  const span = vocab - firstId;
  return Array.from({ length: n }, () => firstId + Math.floor(rand() * span));
}
