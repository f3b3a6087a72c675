import { formatRulerTable, rulerJson } from './format';
import { type CellResult, type RulerResult, addRetention } from './runner';

function cell(c: Partial<CellResult> & Pick<CellResult, 'mode' | 'accuracy'>): CellResult {
  return { task: 'niah_single', length: 1024, samples: 10, exact: 0, meanLatencyMs: 12.34, meanGeneratedTokens: 9, maxNewTokens: 10, ...c };
}

describe('eval ruler output', () => {
  const results = [
    cell({ mode: 'global', accuracy: 0.8 }),
    cell({ mode: 'star', accuracy: 0.6, blockSize: 256, anchorSize: 256, block: '1/4', anchor: 'b' }),
    cell({ task: 'vt', mode: 'global', accuracy: 0 }),
    cell({ task: 'vt', mode: 'star', accuracy: 0.1, blockSize: 256, anchorSize: 256, block: '1/4', anchor: 'b' }),
    cell({ task: 'cwe', mode: 'star', accuracy: 0.1, blockSize: 256, anchorSize: 0, block: '1/4', anchor: '0' }),
  ];
  addRetention(results);
  const r: RulerResult = {
    results,
    lengths: [{ task: 'niah_single', length: 1024, meanTokens: 1022.5, minTokens: 1021, maxTokens: 1024 }],
    hosts: 4,
    prompt: 'plain',
    elapsedMs: 1234.5,
  };
  const info = { model: 'M', haystack: 'noise', seed: 3, samples: 10 };

  it('retention = star / global at the same (task, length); null without a usable global', () => {
    expect(results.map((c) => c.retention)).toEqual([undefined, 0.6 / 0.8, undefined, null, null]);
  });

  it('JSON keeps the required names, adds Star fields only to Star cells', () => {
    const j = rulerJson(r, info) as { results: Record<string, unknown>[] };
    expect(Object.keys(j)).toEqual(['model', 'haystack', 'prompt', 'seed', 'samples', 'hosts', 'elapsedMs', 'lengths', 'results']);
    for (const c of j.results) for (const k of ['task', 'length', 'mode', 'accuracy', 'samples']) expect(c).toHaveProperty(k);
    expect(j.results[0]).not.toHaveProperty('blockSize');
    expect(j.results[1]).toMatchObject({ blockSize: 256, anchorSize: 256, block: '1/4', anchor: 'b', retention: 0.6 / 0.8, meanLatencyMs: 12.3 });
  });

  it('table: one row per cell, percentages, token range', () => {
    const t = formatRulerTable(r, info);
    expect(t).toMatch(/task\s+length\s+tokens\s+mode\s+block\s+anchor\s+samples\s+accuracy\s+retention\s+ms\/sample/);
    expect(t).toMatch(/niah_single\s+1024\s+1021-1024\s+global\s+-\s+-\s+10\s+80\.0%\s+-/);
    expect(t).toMatch(/niah_single\s+1024\s+1021-1024\s+star\s+256\s+256\s+10\s+60\.0%\s+75\.0%/);
    expect(t.trim().split('\n')).toHaveLength(3 + 1 + results.length);
  });
});
