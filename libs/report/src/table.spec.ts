import { formatCell } from './table';

describe('formatCell', () => {
  it('prints a missing value (null, undefined, NaN) as a dash, numbers with thousands separators and fixed digits', () => {
    expect([null, undefined, NaN].map((v) => formatCell(v, 2))).toEqual(['–', '–', '–']);
    expect(formatCell(1234.567, 1)).toBe('1,234.6');
    expect(formatCell(Infinity)).toBe('Infinity');
    expect(formatCell('text')).toBe('text');
  });
});
