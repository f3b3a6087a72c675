import { StarqError } from '@starq/protocol/errors';
import { checkPositions, ContextTooLongError, positionLimit, positionLimitSource } from './positions';

describe('positionLimit', () => {
  it('is max_position_embeddings, or the sliding window when smaller', () => {
    expect(positionLimit({ maxPositionEmbeddings: 2048, slidingWindow: null })).toBe(2048);
    expect(positionLimit({ maxPositionEmbeddings: 131072, slidingWindow: 4096 })).toBe(4096);
    expect(positionLimit({ maxPositionEmbeddings: 1024, slidingWindow: 4096 })).toBe(1024);
    expect(positionLimitSource({ maxPositionEmbeddings: 131072, slidingWindow: 4096 })).toBe('sliding window (4096)');
    expect(positionLimitSource({ maxPositionEmbeddings: 1024, slidingWindow: 4096 })).toBe('position limit (max_position_embeddings = 1024)');
  });
});

describe('checkPositions', () => {
  const catchError = (f: () => void): StarqError => {
    try {
      f();
    } catch (e) {
      return e as StarqError;
    }
    throw new Error('expected a throw');
  };

  it('accepts N + M + K = P and refuses P + 1 with the message, code and status', () => {
    expect(() => checkPositions({ contextTokens: 100, queryTokens: 20, maxNewTokens: 8 }, 128)).not.toThrow();
    const e = catchError(() => checkPositions({ contextTokens: 100, queryTokens: 20, maxNewTokens: 9 }, 128));
    expect(e).toBeInstanceOf(ContextTooLongError);
    expect(e.code).toBe('context_too_long');
    expect(e.status).toBe(422);
    expect(e.message).toMatch(/^context \(100\) \+ query \(20\) \+ max new tokens \(9\) = 129 exceeds the model's maximum of 128 positions: lower max new tokens to at most 8$/);
    expect(e.param).toBe('max_new_tokens');
  });

  it('blames the context when the context and query alone fill the model, in the caller\'s names', () => {
    const e = catchError(() => checkPositions({ contextTokens: 120, queryTokens: 8, maxNewTokens: 1 }, 128, { context: 'contextIds', maxNewTokens: 'maxNewTokens' }));
    expect(e.param).toBe('contextIds');
    expect(e.message).toMatch(/shorten the context or the query$/);
  });

  it('takes the limit from a model config', () => {
    const config = { maxPositionEmbeddings: 8192, slidingWindow: 64 };
    expect(() => checkPositions({ contextTokens: 60, queryTokens: 4, maxNewTokens: 0 }, config)).not.toThrow();
    expect(() => checkPositions({ contextTokens: 60, queryTokens: 4, maxNewTokens: 1 }, config)).toThrow(/maximum of 64 positions/);
  });
});
