/**
 * The envelope of actor messages between processes, encoded with msgpack: a `call` to an actor
 * method, its `reply`, and a one-way `tell`. What a method takes and returns is the application's
 * (starq's host calls: libs/cluster host-calls.ts), validated by the receiver with the checks of
 * validate.ts.
 *
 * Every message is a plain object with `v` (= {@link PROTOCOL_VERSION}) and `kind`. The codec
 * (`encode` / `decode`) validates the envelope both ways, so a bug on the sender fails at the
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
 * Fields not listed here are kept but ignored (additive changes do not need a version bump);
 * removing or re-typing a field does.
 */
import { Packr, addExtension } from 'msgpackr';
import { StarqError } from './errors';
import { ProtocolError, checkFields, is, type ReplyAddress, type Schema } from './validate';

/** Version of the wire format. Bump on incompatible changes; all services must then be restarted. */
export const PROTOCOL_VERSION = 1 as const;

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

/**
 * An error as data: what a failed reply carries, and what a failed queue job records (a
 * serialised StarqError or any thrown Error).
 */
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

/** A one-way message to an actor (no reply): `topic` names the handler, `body` is its payload. */
export interface TellMessage extends Envelope<'tell'> {
  topic: string;
  body?: unknown;
}

export type Message = CallMessage | ReplyMessage | TellMessage;

export type MessageKind = Message['kind'];
export type MessageOf<K extends MessageKind> = Extract<Message, { kind: K }>;
/** A message without its envelope, for building one with {@link message}. */
export type MessageBody<K extends MessageKind> = Omit<MessageOf<K>, 'v' | 'kind'>;

export const MESSAGE_KINDS: readonly MessageKind[] = ['call', 'reply', 'tell'];

/** Builds a message of `kind` (adds `v` and `kind`). Not validated until encoded or {@link expectMessage}d. */
export function message<K extends MessageKind>(kind: K, body: MessageBody<K>): MessageOf<K> {
  return { v: PROTOCOL_VERSION, kind, ...body } as unknown as MessageOf<K>;
}

// ---------------------------------------------------------------------------------------------
// Validation

/** The fields of a {@link WireError}. */
export const WIRE_ERROR_SCHEMA: Schema = {
  required: {
    code: is.str,
    message: is.anyStr,
    param: is.orNull(is.anyStr),
    name: is.anyStr,
  },
  optional: { status: is.nat },
};

const SERVER_TRACE_SCHEMA: Schema = { required: { received: is.epochMs, decoded: is.epochMs, started: is.epochMs, finished: is.epochMs } };

const SCHEMAS: Record<MessageKind, Schema> = {
  call: { required: { id: is.str, from: is.str, method: is.str, deadline: is.epochMs }, optional: { args: is.anything, trace: is.bool } },
  reply: {
    required: { id: is.str, ok: is.bool },
    optional: { result: is.anything, error: is.object(WIRE_ERROR_SCHEMA), trace: is.object(SERVER_TRACE_SCHEMA) },
    post: (m) => {
      if (m.ok === false && m.error === undefined) {
        throw new ProtocolError('reply.error is required when reply.ok is false', { param: 'reply.error' });
      }
    },
  },
  tell: { required: { topic: is.str }, optional: { body: is.anything } },
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
    const got = value === null ? 'null' : Array.isArray(value) ? 'array' : ArrayBuffer.isView(value) ? value.constructor.name : typeof value;
    throw new ProtocolError(`a message must be a msgpack map with v and kind (got ${got})`);
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
    if (typeof kind !== 'string' || !Object.prototype.hasOwnProperty.call(SCHEMAS, kind)) {
      throw new ProtocolError(`unknown message kind ${JSON.stringify(kind)}; known kinds: ${MESSAGE_KINDS.join(', ')}`, { param: 'kind' });
    }
    checkFields(obj, kind, SCHEMAS[kind as MessageKind]);
    return obj as unknown as Message;
  } catch (err) {
    if (err instanceof ProtocolError && replyTo && !err.replyTo) {
      throw new ProtocolError(err.message, { param: err.param, replyTo });
    }
    throw err;
  }
}

/** Validates `value` as a message of `kind`: `const call = expectMessage('call', value)`. */
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
