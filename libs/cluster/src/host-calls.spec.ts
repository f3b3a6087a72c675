import { ProtocolError } from '@starq/protocol';
import { HOST_CALLS } from './host-calls';
import { validateBlockJob, validateRequestJob, type BlockJobData, type RequestJobData } from './jobs';

function protocolError(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolError);
    expect((e as ProtocolError).code).toBe('protocol_error');
    return e as ProtocolError;
  }
  throw new Error('expected a ProtocolError');
}

const attend = () => ({ cacheIds: ['ctx:a/b0', 'ctx:a/b1'], layer: 1, q: new Float32Array(2 * 3 * 4), qpos: Int32Array.from([10, 11, 12]) });
const partial = () => ({ o: new Float32Array(2 * 3 * 4), lse: new Float32Array([0, -Infinity, 1, 2, 3, 4]), heads: 2, rows: 3, headDim: 4 });
const block = (): BlockJobData => ({
  requestId: 'r1',
  model: 'tiny',
  cacheId: 'ctx:a/b1',
  contextHash: 'abcd',
  contextLength: 16,
  blockIndex: 1,
  blockSize: 8,
  anchorSize: 4,
  segments: [
    { start: 0, end: 4 },
    { start: 8, end: 16 },
  ],
  keepFrom: 4,
});
const request = (): RequestJobData => ({
  requestId: 'r1',
  model: 'tiny',
  mode: 'star',
  blockSize: null,
  anchorSize: 4,
  hosts: 2,
  contextHash: 'abcd',
  contextLength: 16,
  contextKey: 'ctx:m:star:b8:a4:abcd',
  queryIds: [1, 2],
  maxNewTokens: 3,
  sampling: { temperature: 0, topK: 0, topP: 1, seed: -5 },
  stopIds: [],
  ignoreEos: false,
  cache: true,
  submittedAt: 1_796_000_000_000, // fixed: two calls of request() must build equal objects
});

describe('host wire', () => {
  it('accepts well-formed args and results as they are', () => {
    const a = attend();
    expect(HOST_CALLS.attend.args(a)).toBe(a);
    const p = partial();
    expect(HOST_CALLS.attend.result(p)).toBe(p);
    expect(HOST_CALLS.encodeBlock.args({ cacheId: 'c', ids: Int32Array.from([1, 2, 3]), positions: Int32Array.from([0, 1, 2]), keepFrom: 1 })).toBeTruthy();
    expect(HOST_CALLS.ringAttend.args({ cacheId: 'c', layer: 0, kv: { k: new Float32Array(4), v: new Float32Array(4), kpos: Int32Array.from([0, 1]) } })).toBeTruthy();
    expect(HOST_CALLS.release.result(null)).toBeUndefined();
    expect(HOST_CALLS.stats.args(undefined)).toBeUndefined();
  });

  it('a malformed attend call gets a ProtocolError naming the field', () => {
    expect(protocolError(() => HOST_CALLS.attend.args({ ...attend(), q: Array.from(attend().q) })).param).toBe('attend.q');
    expect(protocolError(() => HOST_CALLS.attend.args({ ...attend(), q: new Float32Array(7) })).message).toMatch(/attend\.q has 7 elements, not a positive multiple of the 3 rows/);
    expect(protocolError(() => HOST_CALLS.attend.args({ ...attend(), layer: -1 })).param).toBe('attend.layer');
    expect(protocolError(() => HOST_CALLS.attend.args({ ...attend(), cacheIds: ['a', 3] })).param).toBe('attend.cacheIds[1]');
    const { qpos: _q, ...noQpos } = attend();
    expect(protocolError(() => HOST_CALLS.attend.args(noQpos)).message).toBe('attend.qpos is missing');
    expect(protocolError(() => HOST_CALLS.attend.args('attend')).param).toBe('attend');
  });

  it('attendMany: every item is checked like an attend, results like partials', () => {
    const batch = { items: [attend(), attend()] };
    expect(HOST_CALLS.attendMany.args(batch)).toEqual(batch);
    expect(HOST_CALLS.attendMany.result([partial(), partial()])).toHaveLength(2);
    expect(protocolError(() => HOST_CALLS.attendMany.args({ items: [attend(), { ...attend(), qpos: [1] }] })).param).toBe('attendMany.items[1].qpos');
    expect(protocolError(() => HOST_CALLS.attendMany.args({ items: 'x' })).param).toBe('attendMany.items');
    expect(protocolError(() => HOST_CALLS.attendMany.args([attend()])).param).toBe('attendMany');
    expect(protocolError(() => HOST_CALLS.attendMany.result([partial(), { ...partial(), heads: 3 }])).param).toBe('attendMany result[1].o');
  });

  it('a malformed result is caught at the caller', () => {
    expect(protocolError(() => HOST_CALLS.attend.result({ ...partial(), lse: new Float32Array(5) })).message).toMatch(/lse has 5 elements but heads\*rows \(2\*3\) = 6/);
    expect(protocolError(() => HOST_CALLS.ringQkv.result({ k: new Float32Array(4), v: new Float32Array(2), kpos: Int32Array.from([0, 1]) })).param).toBe('ringQkv result.v');
    expect(protocolError(() => HOST_CALLS.encodeBlock.result({ cacheId: 'c', hostId: 'h', tokens: 1.5, bytes: 0 })).param).toBe('encodeBlock result.tokens');
    expect(protocolError(() => HOST_CALLS.release.result(3)).param).toBe('result');
  });

  it('encodeBlock args: equal lengths, keepFrom inside the input', () => {
    const ok = { cacheId: 'c', ids: Int32Array.from([1, 2, 3]), positions: Int32Array.from([0, 1, 2]), keepFrom: 1 };
    expect(protocolError(() => HOST_CALLS.encodeBlock.args({ ...ok, positions: Int32Array.from([0, 1]) })).param).toBe('encodeBlock.positions');
    expect(protocolError(() => HOST_CALLS.encodeBlock.args({ ...ok, keepFrom: 3 })).message).toMatch(/keepFrom \(3\) must be < the 3 input rows/);
    expect(protocolError(() => HOST_CALLS.encodeBlock.args({ ...ok, cacheId: 'has space' })).param).toBe('encodeBlock.cacheId');
  });
});

describe('queue job data', () => {
  it('accepts what the client submits', () => {
    expect(validateBlockJob(block())).toEqual(block());
    expect(validateRequestJob(request())).toEqual(request());
    expect(validateRequestJob({ ...request(), blockSize: 8, hosts: null })).toBeTruthy();
  });

  it('names the field at fault of a malformed block job', () => {
    expect(protocolError(() => validateBlockJob({ requestId: 'bad', model: 'tiny' })).message).toBe('block.cacheId is missing');
    expect(protocolError(() => validateBlockJob({ ...block(), segments: [{ start: 5, end: 2 }] })).message).toMatch(/block\.segments\[0\] is \[5, 2\)/);
    expect(protocolError(() => validateBlockJob({ ...block(), segments: [{ start: 8, end: 17 }] })).message).toMatch(/ends at 17, past the context's 16 tokens/);
    expect(protocolError(() => validateBlockJob({ ...block(), keepFrom: 12 })).param).toBe('block.keepFrom');
  });

  it('names the field at fault of a malformed request job', () => {
    expect(protocolError(() => validateRequestJob({ requestId: 42, queryIds: 'not a list' })).param).toBe('request.requestId');
    expect(protocolError(() => validateRequestJob({ ...request(), mode: 'teleport' })).message).toMatch(/request\.mode must be one of star, global, ring/);
    expect(protocolError(() => validateRequestJob({ ...request(), queryIds: [1, -2] })).param).toBe('request.queryIds[1]');
    expect(protocolError(() => validateRequestJob({ ...request(), sampling: { temperature: 0, topK: 0, topP: 1 } })).param).toBe('request.sampling.seed');
  });
});
