/**
 * The wire of a host actor: one entry per method (name, the type of its args and of its result,
 * and a validator for each). The types are the `Host` contract's (libs/attention host.ts), so what
 * runs in-process is exactly what travels. The host actor checks every call's args with
 * {@link serveHost} and `RemoteHost` checks every result, so a malformed call or reply fails with
 * a ProtocolError (code `protocol_error`, `param` = the field, e.g. `attend.q`) at the boundary.
 *
 * Adding a method: its args/result types, a validator for each (validate.ts checks), an entry in
 * {@link HOST_CALLS}; {@link serveHost} and `RemoteHost` then carry it.
 */
import type { AttendBatch, AttendRequest, BlockHandle, EncodeBlockRequest, KvBlock, Partial } from '@starq/attention';
import type { ActorServer } from '@starq/actors';
import { ProtocolError, checkFields, expectLength, fail, is, validator, type Schema, type Validator } from '@starq/protocol';

/** Method names a host actor serves. */
export const HOST_METHODS = {
  encodeBlock: 'encodeBlock',
  attend: 'attend',
  attendMany: 'attendMany',
  ringStart: 'ringStart',
  ringQkv: 'ringQkv',
  ringAttend: 'ringAttend',
  ringPost: 'ringPost',
  ringEnd: 'ringEnd',
  release: 'release',
  stats: 'stats',
  /** Start the host's drain (the same procedure as SIGTERM): it stops taking blocks, hands its blocks over, exits. */
  drain: 'drain',
} as const;

export type HostMethod = keyof typeof HOST_METHODS;

/** What a host reports about itself (`stats`). */
export interface HostStats {
  id: string;
  blocks: number;
  kvBytes: number;
  cacheIds: string[];
}

/** Args and result of every host method. */
export interface HostCallTypes {
  encodeBlock: { args: EncodeBlockRequest; result: BlockHandle };
  attend: { args: AttendRequest; result: Partial };
  /** Many requests' rows in one call (one message of typed arrays: `{ items }`); result i answers item i. */
  attendMany: { args: { items: AttendBatch }; result: Partial[] };
  ringStart: { args: { cacheId: string; ids: Int32Array; positions: Int32Array }; result: void };
  ringQkv: { args: { cacheId: string; layer: number }; result: KvBlock };
  ringAttend: { args: { cacheId: string; layer: number; kv: KvBlock }; result: void };
  ringPost: { args: { cacheId: string; layer: number }; result: void };
  ringEnd: { args: { cacheId: string }; result: void };
  release: { args: { cacheIds: string[] }; result: void };
  stats: { args: void; result: HostStats };
  drain: { args: void; result: { draining: boolean } };
}

export type HostArgs<M extends HostMethod> = HostCallTypes[M]['args'];
export type HostResult<M extends HostMethod> = HostCallTypes[M]['result'];

const nothing: Validator<void> = (v) => {
  if (v !== undefined && v !== null) throw new ProtocolError(`expected no value (got ${typeof v})`, { param: 'result' });
};

const noArgs: Validator<void> = (v) => {
  if (v !== undefined && v !== null && !(typeof v === 'object' && Object.keys(v as object).length === 0)) {
    throw new ProtocolError('this method takes no arguments', { param: 'args' });
  }
};

/** Rows of a (H, T, D) array: its length must be a multiple of T (H·D per row). */
function perRow(m: Record<string, unknown>, name: string, field: string, rowsField: string): void {
  const n = (m[field] as ArrayLike<number>).length;
  const rows = (m[rowsField] as ArrayLike<number>).length;
  if (rows === 0 ? n !== 0 : n === 0 || n % rows !== 0) {
    throw new ProtocolError(`${name}.${field} has ${n} elements, not a positive multiple of the ${rows} rows of ${name}.${rowsField}`, { param: `${name}.${field}` });
  }
}

const KV_BLOCK: Schema = {
  required: { k: is.typed(Float32Array), v: is.typed(Float32Array), kpos: is.typed(Int32Array) },
  post: (m, name) => {
    expectLength(m, name, 'v', (m.k as Float32Array).length, `${name}.k's length`);
    perRow(m, name, 'k', 'kpos');
  },
};

const ATTEND: Schema = {
  required: { cacheIds: is.strList, layer: is.nat, q: is.typed(Float32Array), qpos: is.typed(Int32Array) },
  post: (m, name) => perRow(m, name, 'q', 'qpos'),
};

const PARTIAL: Schema = {
  required: { o: is.typed(Float32Array), lse: is.typed(Float32Array), heads: is.nat, rows: is.nat, headDim: is.nat },
  post: (m, name) => {
    const [h, t, d] = [m.heads as number, m.rows as number, m.headDim as number];
    expectLength(m, name, 'o', h * t * d, `heads*rows*headDim (${h}*${t}*${d})`);
    expectLength(m, name, 'lse', h * t, `heads*rows (${h}*${t})`);
  },
};

/** An array whose every element matches `schema` (element i named `${name}[i]`). */
function listOf<T>(name: string, schema: Schema): Validator<T[]> {
  return (v) => {
    if (!Array.isArray(v)) fail(name, 'an array', v);
    v.forEach((item, i) => checkFields(item, `${name}[${i}]`, schema));
    return v as T[];
  };
}

const attendItems = listOf<AttendRequest>('attendMany.items', ATTEND);

const sameLength = (a: string, b: string) => (m: Record<string, unknown>, name: string) => expectLength(m, name, b, (m[a] as ArrayLike<number>).length, `${name}.${a}'s length`);

/** Validators of the args and the result of every host method. */
export const HOST_CALLS: { [M in HostMethod]: { args: Validator<HostArgs<M>>; result: Validator<HostResult<M>> } } = {
  encodeBlock: {
    args: validator<EncodeBlockRequest>('encodeBlock', {
      required: { cacheId: is.id, ids: is.typed(Int32Array), positions: is.typed(Int32Array), keepFrom: is.nat },
      post: (m, name) => {
        sameLength('ids', 'positions')(m, name);
        const n = (m.ids as Int32Array).length;
        if ((m.keepFrom as number) >= n) throw new ProtocolError(`${name}.keepFrom (${m.keepFrom}) must be < the ${n} input rows`, { param: `${name}.keepFrom` });
      },
    }),
    result: validator<BlockHandle>('encodeBlock result', { required: { cacheId: is.id, hostId: is.id, tokens: is.nat, bytes: is.nat } }),
  },
  attend: {
    args: validator<AttendRequest>('attend', ATTEND),
    result: validator<Partial>('attend result', PARTIAL),
  },
  attendMany: {
    args: (v) => ({ items: attendItems(checkFields(v, 'attendMany', { required: { items: is.anything } }).items) }),
    result: listOf<Partial>('attendMany result', PARTIAL),
  },
  ringStart: {
    args: validator<HostArgs<'ringStart'>>('ringStart', { required: { cacheId: is.id, ids: is.typed(Int32Array), positions: is.typed(Int32Array) }, post: sameLength('ids', 'positions') }),
    result: nothing,
  },
  ringQkv: {
    args: validator<HostArgs<'ringQkv'>>('ringQkv', { required: { cacheId: is.id, layer: is.nat } }),
    result: validator<KvBlock>('ringQkv result', KV_BLOCK),
  },
  ringAttend: {
    args: validator<HostArgs<'ringAttend'>>('ringAttend', { required: { cacheId: is.id, layer: is.nat, kv: is.object(KV_BLOCK) } }),
    result: nothing,
  },
  ringPost: { args: validator<HostArgs<'ringPost'>>('ringPost', { required: { cacheId: is.id, layer: is.nat } }), result: nothing },
  ringEnd: { args: validator<HostArgs<'ringEnd'>>('ringEnd', { required: { cacheId: is.id } }), result: nothing },
  release: { args: validator<HostArgs<'release'>>('release', { required: { cacheIds: is.strList } }), result: nothing },
  stats: {
    args: noArgs,
    result: validator<HostStats>('stats result', { required: { id: is.id, blocks: is.nat, kvBytes: is.nat, cacheIds: is.strList } }),
  },
  drain: { args: noArgs, result: validator<{ draining: boolean }>('drain result', { required: { draining: is.bool } }) },
};

type Handler<M extends HostMethod> = (args: HostArgs<M>) => Promise<HostResult<M>> | HostResult<M>;

/** The implementation behind a host actor's methods (args already validated); `drain` is optional. */
export type HostHandlers = { [M in Exclude<HostMethod, 'drain'>]: Handler<M> } & { drain?: Handler<'drain'> };

/** Serves the given host methods on `server`, validating each call's args before the handler runs. */
export function serveHost(server: ActorServer, handlers: HostHandlers): void {
  for (const m of Object.keys(HOST_METHODS) as HostMethod[]) {
    const fn = handlers[m] as ((args: unknown) => unknown) | undefined;
    if (!fn) continue;
    const check = HOST_CALLS[m].args as Validator<unknown>;
    server.method(HOST_METHODS[m], (args: unknown) => fn(check(args)));
  }
}
