import { InvalidInputError } from '@starq/protocol/errors';
import { assignHosts, defaultBlockSize, phase1Positions, phase1Tokens, planBlocks, planStar } from './plan';

function catchErr(fn: () => unknown): InvalidInputError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InvalidInputError);
    return e as InvalidInputError;
  }
  throw new Error('expected an InvalidInputError');
}

describe('planBlocks', () => {
  it('splits N = 10, b = 4, a = 2 into 3 blocks with anchors on blocks 1 and 2', () => {
    const p = planBlocks(10, 4, 2);
    expect(p.numBlocks).toBe(3);
    expect(p.anchorLength).toBe(2);
    expect(p.blocks.map(({ index, start, end }) => [index, start, end])).toEqual([
      [0, 0, 4],
      [1, 4, 8],
      [2, 8, 10],
    ]);
    expect(p.blocks[0].phase1).toEqual({ segments: [{ start: 0, end: 4 }], keepFrom: 0, length: 4 });
    expect(p.blocks[1].phase1).toEqual({ segments: [{ start: 0, end: 2 }, { start: 4, end: 8 }], keepFrom: 2, length: 6 });
    expect(p.blocks[2].phase1).toEqual({ segments: [{ start: 0, end: 2 }, { start: 8, end: 10 }], keepFrom: 2, length: 4 });
    // Anchor keeps its own positions, the block keeps its global ones.
    expect(Array.from(phase1Positions(p.blocks[2].phase1))).toEqual([0, 1, 8, 9]);
    expect(phase1Tokens([10, 11, 12, 13, 14, 15, 16, 17, 18, 19], p.blocks[1].phase1)).toEqual([10, 11, 14, 15, 16, 17]);
  });

  it('N < b: one block, no anchor', () => {
    const p = planBlocks(3, 8, 8);
    expect(p.numBlocks).toBe(1);
    expect(p.anchorLength).toBe(3); // a' = min(a, N); unused since there is no block k >= 1
    expect(p.blocks).toEqual([{ index: 0, start: 0, end: 3, phase1: { segments: [{ start: 0, end: 3 }], keepFrom: 0, length: 3 } }]);
  });

  it('N = b: one block', () => {
    const p = planBlocks(8, 8, 8);
    expect(p.numBlocks).toBe(1);
    expect(p.blocks[0]).toMatchObject({ start: 0, end: 8 });
  });

  it('N = b + 1: a one-token last block with a full anchor', () => {
    const p = planBlocks(9, 8, 8);
    expect(p.numBlocks).toBe(2);
    expect(p.blocks[1]).toMatchObject({ start: 8, end: 9 });
    expect(p.blocks[1].phase1).toEqual({ segments: [{ start: 0, end: 8 }, { start: 8, end: 9 }], keepFrom: 8, length: 9 });
    expect(Array.from(phase1Positions(p.blocks[1].phase1))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8]);
  });

  it('a = 0: every block alone at its global positions', () => {
    const p = planBlocks(10, 4, 0);
    for (const b of p.blocks) {
      expect(b.phase1).toEqual({ segments: [{ start: b.start, end: b.end }], keepFrom: 0, length: b.end - b.start });
    }
    expect(Array.from(phase1Positions(p.blocks[2].phase1))).toEqual([8, 9]);
  });

  it('anchor defaults to the block size', () => {
    expect(planBlocks(20, 5).anchorSize).toBe(5);
  });

  it('validates block size, anchor and context, reporting all problems at once', () => {
    expect(catchErr(() => planBlocks(10, 0, 0))).toMatchObject({ code: 'invalid_block_size', param: 'block_size' });
    expect(catchErr(() => planBlocks(10, 2.5, 1))).toMatchObject({ code: 'invalid_block_size', param: 'block_size' });
    expect(catchErr(() => planBlocks(10, 4, 5))).toMatchObject({ code: 'invalid_anchor_size', param: 'anchor_size' });
    expect(catchErr(() => planBlocks(10, 4, -1))).toMatchObject({ code: 'invalid_anchor_size', param: 'anchor_size' });
    expect(catchErr(() => planBlocks(0, 4, 4))).toMatchObject({ code: 'empty_context', param: 'context' });
    const e = catchErr(() => planBlocks(0, 0, -1));
    expect(e).toMatchObject({ code: 'invalid_block_size', param: 'block_size', status: 400 });
    expect(e.message).toMatch(/block_size/);
    expect(e.message).toMatch(/anchor_size/);
    expect(e.message).toMatch(/context/);
  });
});

describe('assignHosts', () => {
  it('gives contiguous, near-even runs, larger runs first', () => {
    expect(assignHosts(10, 4).assignments).toEqual([
      { host: 0, blocks: [0, 1, 2] },
      { host: 1, blocks: [3, 4, 5] },
      { host: 2, blocks: [6, 7] },
      { host: 3, blocks: [8, 9] },
    ]);
    expect(assignHosts(10, 4).hostOfBlock).toEqual([0, 0, 0, 1, 1, 1, 2, 2, 3, 3]);
    expect(assignHosts(4, 4).assignments.map((a) => a.blocks)).toEqual([[0], [1], [2], [3]]);
    expect(assignHosts(5, 1).assignments).toEqual([{ host: 0, blocks: [0, 1, 2, 3, 4] }]);
  });

  it('hosts > K: uses only K hosts and reports the effective count', () => {
    const p = assignHosts(2, 5);
    expect(p).toMatchObject({ requestedHosts: 5, effectiveHosts: 2 });
    expect(p.assignments).toEqual([
      { host: 0, blocks: [0] },
      { host: 1, blocks: [1] },
    ]);
  });

  it('validates hosts', () => {
    expect(catchErr(() => assignHosts(3, 0))).toMatchObject({ code: 'invalid_hosts', param: 'hosts' });
    expect(catchErr(() => assignHosts(3, 1.5))).toMatchObject({ code: 'invalid_hosts', param: 'hosts' });
  });
});

describe('planStar', () => {
  it('applies defaults: b = ceil(N/4), a = b, hosts = min(4, K)', () => {
    expect(defaultBlockSize(10)).toBe(3);
    const p = planStar({ contextLength: 10 });
    expect(p).toMatchObject({ blockSize: 3, anchorSize: 3, numBlocks: 4, requestedHosts: 4, effectiveHosts: 4 });
    const q = planStar({ contextLength: 10, blockSize: 8 });
    expect(q).toMatchObject({ blockSize: 8, anchorSize: 8, numBlocks: 2, effectiveHosts: 2 });
    const one = planStar({ contextLength: 1 });
    expect(one).toMatchObject({ blockSize: 1, numBlocks: 1, effectiveHosts: 1 });
  });

  it('reports every bad parameter in one error; code/param of the first', () => {
    const e = catchErr(() => planStar({ contextLength: 0, blockSize: 4, anchorSize: 9, hosts: 0 }));
    expect(e).toMatchObject({ code: 'invalid_anchor_size', param: 'anchor_size' });
    expect(e.message).toMatch(/anchor_size.*hosts.*context/);
    expect(catchErr(() => planStar({ contextLength: 5, hosts: -2 }))).toMatchObject({ code: 'invalid_hosts' });
    expect(catchErr(() => planStar({ contextLength: 0 }))).toMatchObject({ code: 'empty_context', param: 'context' });
  });
});
