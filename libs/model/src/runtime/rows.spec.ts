import { copyRows, rowTiles, sliceRows, writePartialRows } from './rows';
import { sessionOptions } from './session-options';

/** (heads, T, D) buffer whose value at (h, t, d) is h·1000 + t·10 + d. */
function labelled(heads: number, T: number, D: number): Float32Array {
  const x = new Float32Array(heads * T * D);
  for (let h = 0; h < heads; h++) for (let t = 0; t < T; t++) for (let d = 0; d < D; d++) x[(h * T + t) * D + d] = h * 1000 + t * 10 + d;
  return x;
}

describe('row helpers', () => {
  it('sliceRows takes rows [r0, r1) of every head', () => {
    const s = sliceRows(labelled(3, 7, 2), 3, 7, 2, 2, 5); // (3, 3, 2)
    expect(Array.from(s)).toEqual([20, 21, 30, 31, 40, 41, 1020, 1021, 1030, 1031, 1040, 1041, 2020, 2021, 2030, 2031, 2040, 2041]);
  });

  it('copyRows writes a slice back where it came from, and rounds float64 to float32', () => {
    const x = labelled(2, 9, 3);
    const back = new Float32Array(x.length);
    for (let r0 = 0; r0 < 9; r0 += 4) {
      const r1 = Math.min(9, r0 + 4);
      copyRows(sliceRows(x, 2, 9, 3, r0, r1), r1 - r0, 0, back, 9, r0, r1 - r0, 2, 3);
    }
    expect(back).toEqual(x);
    const dst = new Float32Array(4);
    copyRows(Float64Array.from([1 / 3, 2 / 3, 1, 4 / 3]), 2, 0, dst, 2, 0, 2, 2, 1);
    expect(Array.from(dst)).toEqual(Array.from(Float32Array.from([1 / 3, 2 / 3, 1, 4 / 3])));
  });

  it('rowTiles covers the query once, with each tile’s position range', () => {
    const q = labelled(2, 5, 1);
    const qpos = Int32Array.from([9, 3, 4, 12, 0]);
    const tiles = [...rowTiles(q, qpos, 2, 1, 2)];
    expect(tiles.map((t) => [t.r0, t.n, t.minPos, t.maxPos])).toEqual([[0, 2, 3, 9], [2, 2, 4, 12], [4, 1, 0, 0]]);
    expect(Array.from(tiles[1].q)).toEqual([20, 30, 1020, 1030]);
    expect([...rowTiles(q, qpos, 2, 1, 8)][0].q).toBe(q); // one tile: no copy
  });

  it('writePartialRows empties rows without a visible key', () => {
    const dst = { o: new Float32Array(2 * 3 * 1).fill(7), lse: new Float32Array(2 * 3).fill(7), heads: 2, rows: 3, headDim: 1 };
    const part = { o: Float64Array.from([1, 2, 3, 4]), lse: Float64Array.from([0.5, -Infinity, -1e30, 2]), heads: 2, rows: 2, headDim: 1 };
    writePartialRows(dst, part, 1);
    expect(Array.from(dst.o)).toEqual([7, 1, 0, 7, 0, 4]);
    expect(Array.from(dst.lse)).toEqual([7, 0.5, -Infinity, 7, -Infinity, 2]);
  });
});

describe('sessionOptions', () => {
  it('builds the engine options from settings, with defaults', () => {
    expect(sessionOptions()).toEqual({
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    });
    const so = sessionOptions({ threads: 2, spinning: true, graphOptimization: 'basic' });
    expect(so.intraOpNumThreads).toBe(2);
    expect(so.graphOptimizationLevel).toBe('basic');
    expect(so.extra).toEqual({ session: { intra_op: { allow_spinning: '1' }, inter_op: { allow_spinning: '1' } } });
  });

  it('rejects a thread count that is not a positive integer', () => {
    expect(() => sessionOptions({ threads: 0 })).toThrow(/threads must be an integer ≥ 1, got 0/);
  });
});
