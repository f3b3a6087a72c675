import {
  checkLengths,
  clusterHosts,
  maxNewTokensFor,
  modeCells,
  parseAnchorSpecs,
  parseBlockSpecs,
  parseLengths,
  parseModes,
  parseTasks,
  resolveSize,
} from './options';
import { TASKS } from './tasks';

const code = (c: string, param: string) => expect.objectContaining({ code: c, param });

describe('eval ruler flags', () => {
  it('tasks, modes, lengths', () => {
    expect(parseTasks('niah_single, vt,niah_single')).toEqual(['niah_single', 'vt']);
    expect(parseTasks(TASKS.join(','))).toEqual([...TASKS]);
    expect(() => parseTasks('niah_single,qa')).toThrow(code('invalid_task', 'tasks'));
    expect(() => parseTasks('niah_single,')).toThrow(code('invalid_task', 'tasks'));
    expect(parseModes('star,global')).toEqual(['star', 'global']);
    expect(() => parseModes('ring')).toThrow(/exact, like global/);
    expect(() => parseModes('fast')).toThrow(code('invalid_mode', 'modes'));
    expect(parseLengths('1024,2048,1024')).toEqual([1024, 2048]);
    expect(() => parseLengths('1k')).toThrow(code('invalid_length', 'lengths'));
    expect(() => parseLengths('0')).toThrow(code('invalid_length', 'lengths'));
  });

  it('block and anchor sizes: tokens, fractions of the length, "b"', () => {
    const blocks = parseBlockSpecs('1/4,0.125,300,1/4');
    expect(blocks.map((b) => b.text)).toEqual(['1/4', '0.125', '300']);
    expect(blocks.map((b) => resolveSize(b, 1000))).toEqual([250, 125, 300]);
    expect(resolveSize(blocks[0], 1001)).toBe(251); // ⌈f·L⌉
    expect(resolveSize(parseBlockSpecs('1/3')[0], 3000)).toBe(1000); // no float overshoot
    for (const bad of ['0', '5/4', '1/0', '-1', 'x', '0.0', '1/4/2']) expect(() => parseBlockSpecs(bad)).toThrow(code('invalid_block_size', 'block-size'));
    expect(parseAnchorSpecs('b,0,1/8').map((a) => a.text)).toEqual(['b', '0', '1/8']);
    expect(() => parseAnchorSpecs('c')).toThrow(code('invalid_anchor_size', 'anchor-size'));
  });

  it('mode cells: global first, then every (block, anchor) pair, duplicates dropped; a > b is an error', () => {
    const cells = modeCells(['global', 'star'], parseBlockSpecs('1/4,1/8,128'), parseAnchorSpecs('b,0'), 1024);
    expect(cells).toEqual([
      { mode: 'global' },
      { mode: 'star', blockSize: 256, anchorSize: 256, block: '1/4', anchor: 'b' },
      { mode: 'star', blockSize: 256, anchorSize: 0, block: '1/4', anchor: '0' },
      { mode: 'star', blockSize: 128, anchorSize: 128, block: '1/8', anchor: 'b' },
      { mode: 'star', blockSize: 128, anchorSize: 0, block: '1/8', anchor: '0' },
    ]);
    expect(modeCells(['star'], parseBlockSpecs('1/4'), parseAnchorSpecs('b'), 2048)).toEqual([{ mode: 'star', blockSize: 512, anchorSize: 512, block: '1/4', anchor: 'b' }]);
    expect(modeCells(['global'], parseBlockSpecs('1/4'), parseAnchorSpecs('b'), 2048)).toEqual([{ mode: 'global' }]);
    expect(() => modeCells(['star'], parseBlockSpecs('1/8'), parseAnchorSpecs('200'), 1024)).toThrow(code('invalid_anchor_size', 'anchor-size'));
  });

  it('lengths must fit the task minimum and the model positions with room for the answer', () => {
    expect(() => checkLengths(['niah_single'], [1024, 4087], 4096)).not.toThrow(); // 4087 + 10 − 1 = 4096
    expect(() => checkLengths(['niah_single'], [4088], 4096)).toThrow(/at most 4087/);
    expect(() => checkLengths(['niah_single'], [5000], 4096)).toThrow(code('length_too_long', 'lengths'));
    expect(() => checkLengths(['niah_single'], [4096], 4096, 1)).not.toThrow();
    expect(() => checkLengths(['cwe'], [256], 4096)).toThrow(code('length_too_short', 'lengths'));
    expect(() => checkLengths(['cwe'], [512], 512)).toThrow(/cwe needs at least 512 prompt tokens, so it cannot run on this model with 80 answer tokens/);
    expect(maxNewTokensFor('cwe')).toBe(80);
    expect(maxNewTokensFor('cwe', 5)).toBe(5);
  });

  it('cluster hosts: the largest Star plan, at least 1', () => {
    const cells = [1024, 2048].map((L) => modeCells(['global', 'star'], parseBlockSpecs('1/4,1/8'), parseAnchorSpecs('b'), L));
    expect(clusterHosts(cells, [1024, 2048])).toBe(4);
    expect(clusterHosts(cells, [1024, 2048], 2)).toBe(2);
    expect(clusterHosts([[{ mode: 'global' }]], [1024])).toBe(1);
    expect(clusterHosts([modeCells(['star'], parseBlockSpecs('1/2'), parseAnchorSpecs('b'), 1024)], [1024])).toBe(2);
  });
});
