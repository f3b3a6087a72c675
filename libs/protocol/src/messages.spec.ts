import { Packr } from 'msgpackr';
import { StarqError } from './errors';
import { PROTOCOL_VERSION, decode, encode, expectMessage, message, toWireError, validateMessage, type CallMessage, type Message } from './messages';
import { InvalidInputError } from './errors';
import { ProtocolError } from './validate';

const raw = new Packr({ moreTypes: true, useRecords: false });

/** A call carrying the args of an attend (heads × rows × headDim floats and rows positions). */
function attendCall(heads = 2, rows = 3, headDim = 4): CallMessage & { args: { q: Float32Array; qpos: Int32Array; lse: Float32Array } } {
  const q = new Float32Array(heads * rows * headDim).map((_, i) => i * 0.5 - 3);
  const args = { q, qpos: Int32Array.from({ length: rows }, (_, i) => 100 + i), lse: new Float32Array([0.5, -Infinity]) };
  return message('call', { id: '7', from: 'starq:reply:c', method: 'attend', args, deadline: Date.now() + 1000 }) as CallMessage & { args: typeof args };
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
    attendCall(),
    message('tell', { topic: 'release', body: { cacheIds: ['a', 'b'] } }),
    message('tell', { topic: 'ping' }),
  ];

  it.each(samples.map((m) => [m.kind, m] as const))('round-trips %s', (_kind, m) => {
    const buf = encode(m);
    expect(Buffer.isBuffer(buf)).toBe(true);
    expect(decode(buf)).toEqual(m);
  });

  it('keeps Float32Array / Int32Array binary and aligned', () => {
    const m = attendCall(4, 16, 64); // 4096 floats
    const buf = encode(m);
    // binary: 4 bytes per float plus a small envelope (a list of numbers would be ~5 bytes each)
    expect(buf.length).toBeLessThan(m.args.q.byteLength + m.args.qpos.byteLength + 256);
    // decode from an odd offset inside a larger buffer: arrays must still come back aligned
    const big = Buffer.alloc(buf.length + 3);
    buf.copy(big, 3);
    const d = (decode(big.subarray(3)) as ReturnType<typeof attendCall>).args;
    expect(d.q).toBeInstanceOf(Float32Array);
    expect(d.qpos).toBeInstanceOf(Int32Array);
    expect(d.q.byteOffset % 4).toBe(0);
    expect(d.qpos.byteOffset % 4).toBe(0);
    expect(Array.from(d.q)).toEqual(Array.from(m.args.q));
    expect(Array.from(d.qpos)).toEqual(Array.from(m.args.qpos));
    // -Infinity survives
    expect(d.lse[1]).toBe(-Infinity);
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
    const tell = message('tell', { topic: 't' });
    const pe = expectProtocolError(() => decode(raw.pack({ ...tell, v: 2 })), /unsupported protocol version v=2 .*speaks v1/);
    expect(pe.param).toBe('v');
    const { v: _v, ...noV } = tell;
    expectProtocolError(() => decode(raw.pack(noV)), /no protocol version/);
  });

  it('rejects an unknown kind, listing the known ones', () => {
    const pe = expectProtocolError(() => decode(raw.pack({ v: PROTOCOL_VERSION, kind: 'teleport' })), /unknown message kind "teleport".*call, reply, tell/);
    expect(pe.param).toBe('kind');
    expectProtocolError(() => decode(raw.pack({ v: 1, kind: 'toString' })), /unknown message kind/);
  });

  it('rejects malformed structure, naming the field', () => {
    const c = attendCall();
    expectProtocolError(() => validateMessage({ ...c, deadline: -1 }), /call\.deadline must be a finite epoch-ms number/);
    expectProtocolError(() => validateMessage({ ...c, method: '' }), /call\.method must be a non-empty string/);
    const { method: _m, ...noMethod } = c;
    const pe = expectProtocolError(() => decode(raw.pack(noMethod)), /call\.method is missing/);
    expect(pe.param).toBe('call.method');
    expectProtocolError(() => validateMessage(message('reply', { id: '1', ok: false })), /reply\.error is required/);
    const bad = { code: 'x', message: 'm', param: 3, name: 'E' } as never;
    expect(expectProtocolError(() => validateMessage(message('reply', { id: '1', ok: false, error: bad })), /reply\.error\.param must be a string/).param).toBe('reply.error.param');
    expectProtocolError(() => validateMessage(message('tell', { topic: '' })), /tell\.topic must be a non-empty string/);
  });

  it('validates on encode, so a sender bug fails at the sender', () => {
    const c = attendCall();
    expectProtocolError(() => encode({ ...c, id: 5 } as never), /call\.id must be a non-empty string/);
  });

  it('recovers the reply address of a malformed call', () => {
    const pe = expectProtocolError(() => decode(raw.pack({ v: 1, kind: 'call', id: '9', from: 'starq:reply:x', method: 42, deadline: 1 })), /call\.method/);
    expect(pe.replyTo).toEqual({ id: '9', from: 'starq:reply:x' });
    const pe2 = expectProtocolError(() => decode(raw.pack({ v: 3, kind: 'call', id: '9', from: 'starq:reply:x' })), /version/);
    expect(pe2.replyTo).toEqual({ id: '9', from: 'starq:reply:x' });
    expect(expectProtocolError(() => decode(raw.pack({ v: 1, kind: 'call', id: '9' })), /from/).replyTo).toBeNull();
  });

  it('expectMessage checks the kind', () => {
    const c = attendCall();
    expect(expectMessage('call', c)).toBe(c);
    expectProtocolError(() => expectMessage('reply', c), /expected a reply message, got call/);
  });

  it('serialises errors for replies', () => {
    expect(toWireError(new InvalidInputError('bad_x', 'x is bad', 'x'))).toEqual({ code: 'bad_x', message: 'x is bad', param: 'x', name: 'InvalidInputError', status: 400 });
    expect(toWireError(new TypeError('boom'))).toEqual({ code: 'internal_error', message: 'boom', param: null, name: 'TypeError' });
    expect(toWireError('str').code).toBe('internal_error');
  });
});
