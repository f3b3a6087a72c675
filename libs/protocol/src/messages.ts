/**
 * Versioned wire messages between starq processes (docs/DESIGN.md §9.1), encoded with msgpack.
 *
 * Every message is a plain object with `v` (= {@link PROTOCOL_VERSION}) and `kind`. The codec
 * (`encode` / `decode`) validates the structure both ways, so a bug on the sender fails at the
 * sender, and a foreign or stale message fails at the receiver with a {@link ProtocolError} that
 * names the field at fault.
 *
 * Encoding: msgpack via msgpackr with `moreTypes: true`, so typed arrays (Float32Array, Int32Array,
 * ...) travel as binary (msgpack ext type 0x74: one type byte + raw little-endian element bytes),
 * never as lists of numbers. `useRecords: false` keeps objects as ordinary msgpack maps (no
 * msgpackr record extension), so every message is self-describing. Decoded typed arrays are always
 * backed by their own, aligned ArrayBuffer (byteOffset 0), safe to hand to onnxruntime or a
 * worker thread.
 *
 * The Star payloads (`attend`, `partial`, `encode-block`) are full messages too: they travel as the
 * `args` / `result` of actor calls (receivers check them with {@link expectMessage}) or as the
 * JSON data of a queue job (`encode-block` holds no typed arrays).
 *
 * Fields not listed here are kept but ignored (additive changes do not need a version bump);
 * removing or re-typing a field does.
 */
import { Packr, addExtension } from 'msgpackr';
import { StarqError } from './errors';

/** Version of the wire format. Bump on incompatible changes; all services must then be restarted. */
export const PROTOCOL_VERSION = 1 as const;

/** Where a malformed message asked its reply to go, when that could be recovered. */
export interface ReplyAddress {
  id: string;
  from: string;
}

/** A message violates the wire protocol (bad msgpack, version, kind or field). Code `protocol_error`. */
export class ProtocolError extends StarqError {
  /** Reply address found in the malformed message, so a server can still answer the caller. */
  readonly replyTo: ReplyAddress | null;

  constructor(message: string, opts: { param?: string | null; replyTo?: ReplyAddress | null; cause?: unknown } = {}) {
    super('protocol_error', message, { param: opts.param ?? null, status: 500, cause: opts.cause });
    this.replyTo = opts.replyTo ?? null;
  }
}

// ---------------------------------------------------------------------------------------------
// Message types

interface Envelope<K extends string> {
  v: typeof PROTOCOL_VERSION;
  kind: K;
}

/** An RPC request to an actor. */
export interface CallMessage extends Envelope<'call'> {
  /** Call id, unique per caller (per reply channel). */
  id: string;
  /** Reply channel of the caller: the reply is published there. */
  from: string;
  method: string;
  /** Method arguments: any msgpack-able value (typed arrays stay binary). */
  args: unknown;
  /** Epoch ms after which the call must not be started. */
  deadline: number;
  /** Ask the actor to put its {@link ServerTrace} timestamps in the reply. @defaultValue false */
  trace?: boolean;
}

/**
 * When a traced call passed each point on the actor's side, in epoch ms with sub-ms precision
 * (`performance.timeOrigin + performance.now()`), comparable with the caller's clock on the same
 * machine.
 */
export interface ServerTrace {
  /** The message's bytes arrived. */
  received: number;
  /** It was decoded and validated. */
  decoded: number;
  /** Its handler started (after any wait in a serial lane). */
  started: number;
  /** Its handler returned. */
  finished: number;
}

/** Error carried by a failed reply (a serialised StarqError or any thrown Error). */
export interface WireError {
  code: string;
  message: string;
  param: string | null;
  /** Class name on the remote side, e.g. `CapacityError`. */
  name: string;
  /** Suggested HTTP status, when the remote error had one. */
  status?: number;
}

/** The answer to a `call`: `result` when ok, `error` otherwise. */
export interface ReplyMessage extends Envelope<'reply'> {
  id: string;
  ok: boolean;
  result?: unknown;
  error?: WireError;
  /** Present when the call asked for it (`call.trace`). */
  trace?: ServerTrace;
}

/** Phase 2: the query rows of one layer of one step, to attend over the named caches. */
export interface AttendMessage extends Envelope<'attend'> {
  requestId: string;
  /** Generation step (0 = the query prompt itself). */
  step: number;
  layer: number;
  cacheIds: string[];
  /** (heads, rows, headDim), head-major. */
  q: Float32Array;
  /** (rows): absolute position of each query row. */
  qpos: Int32Array;
  heads: number;
  rows: number;
  headDim: number;
}

/** Phase 2: one host's partial attention (o, lse) for an `attend` (see libs/attention partial.ts). */
export interface PartialMessage extends Envelope<'partial'> {
  requestId: string;
  step: number;
  layer: number;
  hostId: string;
  /** (heads, rows, headDim) */
  o: Float32Array;
  /** (heads, rows); -Infinity (or ≤ -1e29) marks a row with no visible key. */
  lse: Float32Array;
  heads: number;
  rows: number;
  headDim: number;
}

/** Half-open range [start, end) of context token indices. */
export interface TokenRange {
  start: number;
  end: number;
}

/**
 * Phase 1: encode one block. No tensors: the host reads the context's token ids from Redis
 * (`RedisKeys.contextIds(contextRef)`, a binary Int32Array) and feeds the concatenation of
 * `segments` (anchor ++ block); a token's position is its index in the context. This is also the
 * JSON payload of a `blocks` queue job.
 */
export interface EncodeBlockMessage extends Envelope<'encode-block'> {
  /** Name of the KV cache to create (see `blockCacheId`). */
  cacheId: string;
  model: string;
  /** Context hash (`contextHash(ids)`): where the context's token ids are stored. */
  contextRef: string;
  /** Context token ranges whose concatenation is the model input (anchor first, then block). */
  segments: TokenRange[];
  /** Rows of the input (0-based, after concatenation) from which K/V are kept; rows before are the anchor. */
  keepFrom: number;
  blockIndex: number;
  /** Block size b. */
  blockSize: number;
  /** Anchor size a. */
  anchorSize: number;
}

/** Control: free these caches (unknown ids are ignored). */
export interface ReleaseMessage extends Envelope<'release'> {
  cacheIds: string[];
}

/** Control: the receiving actor should drain and exit. */
export interface ShutdownMessage extends Envelope<'shutdown'> {
  reason: string;
}

export type Message =
  | CallMessage
  | ReplyMessage
  | AttendMessage
  | PartialMessage
  | EncodeBlockMessage
  | ReleaseMessage
  | ShutdownMessage;

export type MessageKind = Message['kind'];
export type MessageOf<K extends MessageKind> = Extract<Message, { kind: K }>;
/** A message without its envelope, for building one with {@link message}. */
export type MessageBody<K extends MessageKind> = Omit<MessageOf<K>, 'v' | 'kind'>;

export const MESSAGE_KINDS: readonly MessageKind[] = ['call', 'reply', 'attend', 'partial', 'encode-block', 'release', 'shutdown'];

/** Builds a message of `kind` (adds `v` and `kind`). Not validated until encoded or {@link expectMessage}d. */
export function message<K extends MessageKind>(kind: K, body: MessageBody<K>): MessageOf<K> {
  return { v: PROTOCOL_VERSION, kind, ...body } as unknown as MessageOf<K>;
}

// ---------------------------------------------------------------------------------------------
// Validation

type Check = (value: unknown, path: string, obj: Record<string, unknown>, field: string) => void;

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (ArrayBuffer.isView(v)) return v.constructor.name;
  return typeof v;
}

function fail(path: string, expected: string, got: unknown): never {
  throw new ProtocolError(`${path} must be ${expected} (got ${typeName(got)})`, { param: path });
}

const str: Check = (v, p) => {
  if (typeof v !== 'string' || v.length === 0) fail(p, 'a non-empty string', v);
};
const anyStr: Check = (v, p) => {
  if (typeof v !== 'string') fail(p, 'a string', v);
};
const nat: Check = (v, p) => {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(p, 'a non-negative integer', v);
};
const epochMs: Check = (v, p) => {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) fail(p, 'a finite epoch-ms number', v);
};
const bool: Check = (v, p) => {
  if (typeof v !== 'boolean') fail(p, 'a boolean', v);
};
const anything: Check = () => undefined;
const serverTrace: Check = (v, p) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(p, 'an object {received, decoded, started, finished}', v);
  const t = v as Record<string, unknown>;
  for (const k of ['received', 'decoded', 'started', 'finished']) epochMs(t[k], `${p}.${k}`, t, k);
};
const strList: Check = (v, p) => {
  if (!Array.isArray(v)) fail(p, 'an array of strings', v);
  v.forEach((s, i) => str(s, `${p}[${i}]`, {}, ''));
};

/** Typed-array field check; re-aligns (copies) an array whose byteOffset is not element-aligned. */
function typed(ctor: Float32ArrayConstructor | Int32ArrayConstructor): Check {
  return (v, p, obj, field) => {
    if (!(v instanceof ctor)) fail(p, `a ${ctor.name} (binary msgpack typed array; encode with moreTypes: true)`, v);
    if (v.byteOffset % ctor.BYTES_PER_ELEMENT !== 0) obj[field] = v.slice();
  };
}

const ranges: Check = (v, p) => {
  if (!Array.isArray(v) || v.length === 0) fail(p, 'a non-empty array of {start, end} token ranges', v);
  v.forEach((r, i) => {
    const rp = `${p}[${i}]`;
    if (typeof r !== 'object' || r === null || Array.isArray(r)) fail(rp, 'an object {start, end}', r);
    const o = r as Record<string, unknown>;
    nat(o.start, `${rp}.start`, o, 'start');
    nat(o.end, `${rp}.end`, o, 'end');
    if ((o.end as number) < (o.start as number)) {
      throw new ProtocolError(`${rp} is [${o.start}, ${o.end}): end must be ≥ start`, { param: rp });
    }
  });
};

const wireError: Check = (v, p) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(p, 'an object {code, message, param, name}', v);
  const e = v as Record<string, unknown>;
  str(e.code, `${p}.code`, e, 'code');
  anyStr(e.message, `${p}.message`, e, 'message');
  if (e.param !== null && typeof e.param !== 'string') fail(`${p}.param`, 'a string or null', e.param);
  anyStr(e.name, `${p}.name`, e, 'name');
  if (e.status !== undefined) nat(e.status, `${p}.status`, e, 'status');
};

interface Schema {
  required: Record<string, Check>;
  optional?: Record<string, Check>;
  /** Cross-field checks, run after the field checks passed. */
  post?: (m: Record<string, unknown>) => void;
}

function expectLength(m: Record<string, unknown>, kind: string, field: string, want: number, dims: string): void {
  const got = (m[field] as ArrayLike<number>).length;
  if (got !== want) {
    throw new ProtocolError(`${kind}.${field} has ${got} elements but ${dims} = ${want}`, { param: `${kind}.${field}` });
  }
}

const SCHEMAS: Record<MessageKind, Schema> = {
  call: { required: { id: str, from: str, method: str, deadline: epochMs }, optional: { args: anything, trace: bool } },
  reply: {
    required: { id: str, ok: bool },
    optional: { result: anything, error: wireError, trace: serverTrace },
    post: (m) => {
      if (m.ok === false && m.error === undefined) {
        throw new ProtocolError('reply.error is required when reply.ok is false', { param: 'reply.error' });
      }
    },
  },
  attend: {
    required: {
      requestId: str,
      step: nat,
      layer: nat,
      cacheIds: strList,
      q: typed(Float32Array),
      qpos: typed(Int32Array),
      heads: nat,
      rows: nat,
      headDim: nat,
    },
    post: (m) => {
      const [h, t, d] = [m.heads as number, m.rows as number, m.headDim as number];
      expectLength(m, 'attend', 'q', h * t * d, `heads*rows*headDim (${h}*${t}*${d})`);
      expectLength(m, 'attend', 'qpos', t, 'rows');
    },
  },
  partial: {
    required: {
      requestId: str,
      step: nat,
      layer: nat,
      hostId: str,
      o: typed(Float32Array),
      lse: typed(Float32Array),
      heads: nat,
      rows: nat,
      headDim: nat,
    },
    post: (m) => {
      const [h, t, d] = [m.heads as number, m.rows as number, m.headDim as number];
      expectLength(m, 'partial', 'o', h * t * d, `heads*rows*headDim (${h}*${t}*${d})`);
      expectLength(m, 'partial', 'lse', h * t, `heads*rows (${h}*${t})`);
    },
  },
  'encode-block': {
    required: {
      cacheId: str,
      model: str,
      contextRef: str,
      segments: ranges,
      keepFrom: nat,
      blockIndex: nat,
      blockSize: nat,
      anchorSize: nat,
    },
    post: (m) => {
      const total = (m.segments as TokenRange[]).reduce((s, r) => s + r.end - r.start, 0);
      if ((m.keepFrom as number) >= total) {
        throw new ProtocolError(`encode-block.keepFrom (${m.keepFrom}) must be < the input length (${total} tokens over all segments)`, {
          param: 'encode-block.keepFrom',
        });
      }
    },
  },
  release: { required: { cacheIds: strList } },
  shutdown: { required: { reason: anyStr } },
};

function recoverReplyTo(o: Record<string, unknown>): ReplyAddress | null {
  return o.kind === 'call' && typeof o.id === 'string' && o.id && typeof o.from === 'string' && o.from ? { id: o.id, from: o.from } : null;
}

/**
 * Validates `value` as a message (any kind) and returns it typed. Typed arrays at unaligned offsets
 * are replaced by aligned copies in place.
 * @throws ProtocolError naming the bad field; `replyTo` is set when a call's reply address is intact.
 */
export function validateMessage(value: unknown): Message {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || ArrayBuffer.isView(value)) {
    throw new ProtocolError(`a message must be a msgpack map with v and kind (got ${typeName(value)})`);
  }
  const obj = value as Record<string, unknown>;
  const replyTo = recoverReplyTo(obj);
  try {
    if (obj.v !== PROTOCOL_VERSION) {
      throw new ProtocolError(
        obj.v === undefined
          ? `message has no protocol version field v (this build speaks v${PROTOCOL_VERSION}); the sender is not a starq process`
          : `unsupported protocol version v=${JSON.stringify(obj.v)} (this build speaks v${PROTOCOL_VERSION}); run the same starq build on all services`,
        { param: 'v' },
      );
    }
    const kind = obj.kind;
    const schema = typeof kind === 'string' ? SCHEMAS[kind as MessageKind] : undefined;
    if (!schema || !Object.prototype.hasOwnProperty.call(SCHEMAS, kind as string)) {
      throw new ProtocolError(`unknown message kind ${JSON.stringify(kind)}; known kinds: ${MESSAGE_KINDS.join(', ')}`, { param: 'kind' });
    }
    for (const [field, check] of Object.entries(schema.required)) {
      if (!(field in obj)) throw new ProtocolError(`${kind}.${field} is missing`, { param: `${kind}.${field}` });
      check(obj[field], `${kind}.${field}`, obj, field);
    }
    for (const [field, check] of Object.entries(schema.optional ?? {})) {
      if (obj[field] !== undefined) check(obj[field], `${kind}.${field}`, obj, field);
    }
    schema.post?.(obj);
    return obj as unknown as Message;
  } catch (err) {
    if (err instanceof ProtocolError && replyTo && !err.replyTo) {
      throw new ProtocolError(err.message, { param: err.param, replyTo });
    }
    throw err;
  }
}

/**
 * Validates `value` as a message of `kind`, e.g. the args of an `attend` call or a `blocks` job's
 * data: `const req = expectMessage('attend', args)`.
 */
export function expectMessage<K extends MessageKind>(kind: K, value: unknown): MessageOf<K> {
  const m = validateMessage(value);
  if (m.kind !== kind) throw new ProtocolError(`expected a ${kind} message, got ${m.kind}`, { param: 'kind' });
  return m as MessageOf<K>;
}

// ---------------------------------------------------------------------------------------------
// Codec

const packr = new Packr({ moreTypes: true, useRecords: false });

/** msgpackr's typed-array codes (ext 0x74, first data byte). */
const TYPED_ARRAY_CODES = ['Int8', 'Uint8', 'Uint8Clamped', 'Int16', 'Uint16', 'Int32', 'Uint32', 'Float32', 'Float64', 'BigInt64', 'BigUint64'].map((t) => `${t}Array`);

/*
 * msgpackr recognises typed arrays by `instanceof TypedArray` of the realm Uint8Array comes from.
 * Under jest the sandbox shares Uint8Array with the outer realm but has its own Float32Array etc.,
 * which msgpackr would then write as plain maps ({"0": ..}). In that case, register the same 0x74
 * encoding for this realm's TypedArray, so the wire format is identical everywhere. (In a plain
 * Node process both are the same class and nothing is registered.)
 */
const RealmTypedArray = Object.getPrototypeOf(Float32Array.prototype).constructor as new (...a: unknown[]) => ArrayBufferView;
if (RealmTypedArray !== Object.getPrototypeOf(Uint8Array.prototype).constructor) {
  const g = globalThis as unknown as Record<string, new (b: ArrayBuffer) => ArrayBufferView>;
  addExtension({
    Class: RealmTypedArray,
    type: 0x74,
    pack(ta: ArrayBufferView): Buffer {
      const code = TYPED_ARRAY_CODES.indexOf(ta.constructor.name);
      const out = Buffer.allocUnsafe(ta.byteLength + 1);
      out[0] = code;
      out.set(new Uint8Array(ta.buffer, ta.byteOffset, ta.byteLength), 1);
      return out;
    },
    unpack(data: Uint8Array): unknown {
      const buffer = Uint8Array.prototype.slice.call(data, 1).buffer; // own, aligned buffer
      const name = TYPED_ARRAY_CODES[data[0]];
      if (name) return new g[name](buffer);
      if (data[0] === 16) return buffer;
      if (data[0] === 17) return new DataView(buffer);
      throw new Error(`unknown typed array code ${data[0]}`);
    },
  });
}

/**
 * Validates and encodes a message to msgpack.
 * @throws ProtocolError when the message is invalid or holds a value msgpack cannot encode.
 */
export function encode(msg: Message): Buffer {
  validateMessage(msg);
  try {
    return packr.pack(msg);
  } catch (err) {
    throw new ProtocolError(`cannot msgpack-encode ${msg.kind} message: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Decodes and validates a msgpack message.
 * @throws ProtocolError on bad msgpack, wrong version, unknown kind or malformed fields.
 */
export function decode(buf: Uint8Array): Message {
  let value: unknown;
  try {
    value = packr.unpack(buf);
  } catch (err) {
    throw new ProtocolError(`message is not valid msgpack (${buf.length} bytes): ${(err as Error).message}`, { cause: err });
  }
  return validateMessage(value);
}

/** Serialises any thrown value for a failed reply. */
export function toWireError(err: unknown): WireError {
  if (err instanceof StarqError) {
    return { code: err.code, message: err.message, param: err.param, name: err.name, status: err.status };
  }
  if (err instanceof Error) {
    return { code: 'internal_error', message: err.message, param: null, name: err.name };
  }
  return { code: 'internal_error', message: `non-Error thrown: ${String(err)}`, param: null, name: 'Error' };
}
