import { contains, matchAll, stringMatchAll } from './scoring';

describe('RULER string_match_all', () => {
  it('one reference (niah_single, multikey): exact match of the whole number', () => {
    expect(matchAll(' 1234567. What', ['1234567'])).toBe(1);
    expect(matchAll(' 12345. What', ['1234567'])).toBe(0); // truncated answer
    expect(matchAll(' 1234567.', ['123456'])).toBe(0); // the reference is only a prefix of the answer
    expect(matchAll(' 91234567', ['1234567'])).toBe(0);
    expect(matchAll('is: 1234567', ['1234567'])).toBe(1);
    expect(matchAll('', ['1234567'])).toBe(0);
  });

  it('several references (multivalue, multiquery, vt, cwe): partial recall', () => {
    expect(matchAll('111111, 222222 and 333333', ['111111', '222222', '333333', '444444'])).toBe(0.75);
    expect(matchAll('QWERT ASDFG', ['QWERT', 'ASDFG', 'ZXCVB', 'POIUY', 'LKJHG'])).toBe(0.4);
    // case-insensitive, any order, repeats count once
    expect(matchAll('1. Apple 2. apple 3. PEAR', ['apple', 'pear'])).toBe(1);
    expect(matchAll('pineapple', ['apple'])).toBe(0);
  });

  it('averages the per-sample scores over samples', () => {
    const preds = [' 123456.', ' 99.', 'aa bb', 'aa'];
    const refs = [['123456'], ['98'], ['aa', 'bb', 'cc', 'dd'], ['aa', 'bb']];
    // 1 + 0 + 0.5 + 0.5 = 2 over 4 samples
    expect(stringMatchAll(preds, refs)).toBeCloseTo(0.5, 12);
    expect(Number.isNaN(stringMatchAll([], []))).toBe(true);
    expect(() => stringMatchAll(['a'], [])).toThrow(/1 predictions for 0/);
    expect(() => matchAll('a', [])).toThrow(/at least one reference/);
  });

  it('RULER\'s literal substring test is available as wholeWord: false', () => {
    expect(contains(' 1234567.', '123456', { wholeWord: false })).toBe(true);
    expect(contains(' 1234567.', '123456')).toBe(false);
    expect(matchAll('pineapple', ['apple'], { wholeWord: false })).toBe(1);
    // whole-word: punctuation and spaces are boundaries, letters and digits are not
    expect(contains('(apple)', 'apple')).toBe(true);
    expect(contains('apple2', 'apple')).toBe(false);
    expect(contains('x apple, apples', 'apples')).toBe(true);
  });
});
