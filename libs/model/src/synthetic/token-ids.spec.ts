import { randomTokenIds } from './token-ids';

describe('randomTokenIds', () => {
  it('is a function of its arguments, stays in [firstId, vocab) and covers it', () => {
    const a = randomTokenIds(5000, 40, 7, 3);
    expect(randomTokenIds(5000, 40, 7, 3)).toEqual(a);
    expect(randomTokenIds(5000, 40, 8, 3)).not.toEqual(a);
    expect(Math.min(...a)).toBe(3);
    expect(Math.max(...a)).toBe(39);
    expect(a.every(Number.isInteger)).toBe(true);
  });

  it('refuses a firstId outside the vocabulary', () => {
    expect(() => randomTokenIds(3, 10, 1, 10)).toThrow(RangeError);
    expect(() => randomTokenIds(3, 10, 1, -1)).toThrow(/0 ≤ firstId < vocab/);
  });
});
