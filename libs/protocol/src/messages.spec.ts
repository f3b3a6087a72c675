import { Packr } from 'msgpackr';
import { StarqError } from './errors';
import {
  PROTOCOL_VERSION,
  ProtocolError,
  decode,
  encode,
  expectMessage,
  message,
  toWireError,
  validateMessage,
  type AttendMessage,
  type Message,
  type PartialMessage,
} from './messages';
import { InvalidInputError } from './errors';

const raw = new Packr({ moreTypes: true, useRecords: false });

function attend(heads = 2, rows = 3, headDim = 4): AttendMessage {
  const q = new Float32Array(heads * rows * headDim).map((_, i) => i * 0.5 - 3);
  return message('attend', {
    requestId: 'r1',
    step: 7,
    layer: 3,
    cacheIds: ['ctx:a/b0', 'ctx:a/b1'],
    q,
    qpos: Int32Array.from({ length: rows }, (_, i) => 100 + i),
    heads,
    rows,
    headDim,
  });
}

function partial(): PartialMessage {
  return message('partial', {
    requestId: 'r1',
    step: 0,
    layer: 1,
    hostId: 'host-1',
    o: new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]),
    lse: new Float32Array([0.5, -Infinity]),
    heads: 1,
    rows: 2,
    headDim: 4,
  });
}

function expectProtocolError(fn: () => unknown, re: RegExp): ProtocolError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    expect(err).toBeInstanceOf(StarqError);
    const pe = err as ProtocolError;
    expect(pe.code).toBe('protocol_error');
    expect(pe.message).toMatch(re);
    return pe;
  }
  throw new Error('expected a ProtocolError');
}

describe('messages codec', () => {
  const samples: Message[] = [
    message('call', { id: '1', from: 'starq:reply:c', method: 'echo', args: { x: [1, 'two', null], t: new Int32Array([1, 2]) }, deadline: Date.now() + 1000 }),
    message('reply', { id: '1', ok: true, result: { a: 1 } }),
    message('reply', { id: '2', ok: false, error: { code: 'bad_x', message: 'x is bad', param: 'x', name: 'InvalidInputError', status: 400 } }),
    attend(),
    partial(),
    message('encode-block', {
      cacheId: 'ctx:a/b1',
      model: 'tiny',
      contextRef: 'abcd',
      segments: [
        { start: 0, end: 4 },
        { start: 8, end: 16 },
      ],
      keepFrom: 4,
      blockIndex: 1,
      blockSize: 8,
      anchorSize: 4,
    }),
    message('release', { cacheIds: ['a', 'b'] }),
    message('shutdown', { reason: 'test' }),
  ];

  it.each(samples.map((m) => [m.kind, m] as const))('round-trips %s', (_kind, m) => {
    const buf = encode(m);
    expect(Buffer.isBuffer(buf)).toBe(true);
    expect(decode(buf)).toEqual(m);
  });

  it('keeps Float32Array / Int32Array binary and aligned', () => {
    const m = attend(4, 16, 64); // 4096 floats
    const buf = encode(m);
    // binary: 4 bytes per float plus a small envelope (a list of numbers would be ~5 bytes each)
    expect(buf.length).toBeLessThan(m.q.byteLength + m.qpos.byteLength + 256);
    // decode from an odd offset inside a larger buffer: arrays must still come back aligned
    const big = Buffer.alloc(buf.length + 3);
    buf.copy(big, 3);
    const d = decode(big.subarray(3)) as AttendMessage;
    expect(d.q).toBeInstanceOf(Float32Array);
    expect(d.qpos).toBeInstanceOf(Int32Array);
    expect(d.q.byteOffset % 4).toBe(0);
    expect(d.qpos.byteOffset % 4).toBe(0);
    expect(Array.from(d.q)).toEqual(Array.from(m.q));
    expect(Array.from(d.qpos)).toEqual(Array.from(m.qpos));
    // -Infinity survives in lse
    const p = decode(encode(partial())) as PartialMessage;
    expect(p.lse[1]).toBe(-Infinity);
  });

  it('pins the wire format of typed arrays (msgpack ext 0x74, same bytes in every realm)', () => {
    const m = message('call', { id: '1', from: 'f', method: 'm', args: [new Float32Array([1.5]), new Int32Array([-2])], deadline: 5 });
    // produced by a plain Node process (outside jest's sandbox realm)
    const wire = 'de0007a17601a46b696e64a463616c6ca26964a131a466726f6da166a66d6574686f64a16da46172677392c70574070000c03fc7057405feffffffa8646561646c696e6505';
    expect(encode(m).toString('hex')).toBe(wire);
    expect(decode(Buffer.from(wire, 'hex'))).toEqual(m);
  });

  it('rejects bytes that are not msgpack', () => {
    expectProtocolError(() => decode(Buffer.from([0x92, 0x01])), /not valid msgpack/);
  });

  it('rejects a non-map message', () => {
    expectProtocolError(() => decode(raw.pack(42)), /must be a msgpack map/);
  });

  it('rejects a wrong or missing version', () => {
    const pe = expectProtocolError(() => decode(raw.pack({ ...partial(), v: 2 })), /unsupported protocol version v=2 .*speaks v1/);
    expect(pe.param).toBe('v');
    const { v: _v, ...noV } = partial();
    expectProtocolError(() => decode(raw.pack(noV)), /no protocol version/);
  });

  it('rejects an unknown kind, listing the known ones', () => {
    const pe = expectProtocolError(() => decode(raw.pack({ v: PROTOCOL_VERSION, kind: 'teleport' })), /unknown message kind "teleport".*call, reply/);
    expect(pe.param).toBe('kind');
    expectProtocolError(() => decode(raw.pack({ v: 1, kind: 'toString' })), /unknown message kind/);
  });

  it('rejects malformed structure, naming the field', () => {
    const a = attend();
    expectProtocolError(() => validateMessage({ ...a, q: Array.from(a.q) }), /attend\.q must be a Float32Array .*got array/);
    expectProtocolError(() => validateMessage({ ...a, q: new Float64Array(a.q) }), /attend\.q must be a Float32Array .*got Float64Array/);
    expectProtocolError(() => validateMessage({ ...a, q: a.q.subarray(1) }), /attend\.q has 23 elements but heads\*rows\*headDim \(2\*3\*4\) = 24/);
    expectProtocolError(() => validateMessage({ ...a, layer: -1 }), /attend\.layer must be a non-negative integer/);
    expectProtocolError(() => validateMessage({ ...a, cacheIds: ['a', 3] }), /attend\.cacheIds\[1\] must be a non-empty string/);
    const { requestId: _r, ...noReq } = a;
    const pe = expectProtocolError(() => decode(raw.pack(noReq)), /attend\.requestId is missing/);
    expect(pe.param).toBe('attend.requestId');
    expectProtocolError(() => validateMessage(message('reply', { id: '1', ok: false })), /reply\.error is required/);
    expectProtocolError(
      () => validateMessage(message('encode-block', { cacheId: 'c', model: 'm', contextRef: 'h', segments: [{ start: 5, end: 2 }], keepFrom: 0, blockIndex: 0, blockSize: 1, anchorSize: 0 })),
      /segments\[0\] is \[5, 2\)/,
    );
  });

  it('validates on encode, so a sender bug fails at the sender', () => {
    const p = partial();
    expectProtocolError(() => encode({ ...p, lse: new Float32Array(3) }), /partial\.lse has 3 elements but heads\*rows \(1\*2\) = 2/);
  });

  it('recovers the reply address of a malformed call', () => {
    const pe = expectProtocolError(() => decode(raw.pack({ v: 1, kind: 'call', id: '9', from: 'starq:reply:x', method: 42, deadline: 1 })), /call\.method/);
    expect(pe.replyTo).toEqual({ id: '9', from: 'starq:reply:x' });
    const pe2 = expectProtocolError(() => decode(raw.pack({ v: 3, kind: 'call', id: '9', from: 'starq:reply:x' })), /version/);
    expect(pe2.replyTo).toEqual({ id: '9', from: 'starq:reply:x' });
    expect(expectProtocolError(() => decode(raw.pack({ v: 1, kind: 'call', id: '9' })), /from/).replyTo).toBeNull();
  });

  it('expectMessage checks the kind', () => {
    const a = attend();
    expect(expectMessage('attend', a)).toBe(a);
    expectProtocolError(() => expectMessage('partial', a), /expected a partial message, got attend/);
  });

  it('serialises errors for replies', () => {
    expect(toWireError(new InvalidInputError('bad_x', 'x is bad', 'x'))).toEqual({ code: 'bad_x', message: 'x is bad', param: 'x', name: 'InvalidInputError', status: 400 });
    expect(toWireError(new TypeError('boom'))).toEqual({ code: 'internal_error', message: 'boom', param: null, name: 'TypeError' });
    expect(toWireError('str').code).toBe('internal_error');
  });
});
