/**
 * Field checks for values that arrive from another process (actor-call arguments and results,
 * queue-job data, wire messages). A validator checks one object against a {@link Schema} and
 * throws a {@link ProtocolError} naming the first field at fault (`param` = its path, e.g.
 * `attend.q`), so a malformed message gets a typed error with a code instead of crashing the
 * receiver further down.
 *
 * Adding a message kind: write its {@link Schema} (field checks plus cross-field `post` checks) and
 * a validator `(value) => checkObject<T>(value, 'kind', schema)`.
 */
import { StarqError } from './errors';

/** Where a malformed message asked its reply to go, when that could be recovered. */
export interface ReplyAddress {
  id: string;
  from: string;
}

/** A value violates the wire protocol (bad msgpack, version, kind or field). Code `protocol_error`. */
export class ProtocolError extends StarqError {
  /** Reply address found in the malformed message, so a server can still answer the caller. */
  readonly replyTo: ReplyAddress | null;

  constructor(message: string, opts: { param?: string | null; replyTo?: ReplyAddress | null; cause?: unknown } = {}) {
    super('protocol_error', message, { param: opts.param ?? null, status: 500, cause: opts.cause });
    this.replyTo = opts.replyTo ?? null;
  }
}

/**
 * Checks `value` (found at `path`, field `field` of `obj`). Throws a ProtocolError naming `path`.
 * May replace `obj[field]` with a normalised copy (e.g. an aligned typed array).
 */
export type Check = (value: unknown, path: string, obj: Record<string, unknown>, field: string) => void;

/** The fields of an object kind and the checks across them. */
export interface Schema {
  required: Record<string, Check>;
  optional?: Record<string, Check>;
  /** Cross-field checks, run after the field checks passed; `name` prefixes the paths. */
  post?: (m: Record<string, unknown>, name: string) => void;
}

export function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (ArrayBuffer.isView(v)) return v.constructor.name;
  return typeof v;
}

/** Throws the ProtocolError for `path` not being `expected`. */
export function fail(path: string, expected: string, got: unknown): never {
  throw new ProtocolError(`${path} must be ${expected} (got ${typeName(got)})`, { param: path });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !ArrayBuffer.isView(v);
}

/** Field checks. */
export const is = {
  /** A non-empty string. */
  str: ((v, p) => {
    if (typeof v !== 'string' || v.length === 0) fail(p, 'a non-empty string', v);
  }) as Check,
  /** A non-empty string without whitespace (usable as a Redis key part). */
  id: ((v, p) => {
    if (typeof v !== 'string' || v.length === 0 || /\s/.test(v)) fail(p, 'a non-empty string without whitespace', v);
  }) as Check,
  /** Any string. */
  anyStr: ((v, p) => {
    if (typeof v !== 'string') fail(p, 'a string', v);
  }) as Check,
  /** A safe integer ≥ 0. */
  nat: ((v, p) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) fail(p, 'a non-negative integer', v);
  }) as Check,
  /** A finite number. */
  num: ((v, p) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) fail(p, 'a finite number', v);
  }) as Check,
  /** A finite number ≥ 0 (epoch ms). */
  epochMs: ((v, p) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) fail(p, 'a finite epoch-ms number', v);
  }) as Check,
  bool: ((v, p) => {
    if (typeof v !== 'boolean') fail(p, 'a boolean', v);
  }) as Check,
  anything: (() => undefined) as Check,
  /** An array of non-empty strings. */
  strList: ((v, p) => {
    if (!Array.isArray(v)) fail(p, 'an array of strings', v);
    v.forEach((s, i) => is.str(s, `${p}[${i}]`, {}, ''));
  }) as Check,
  /** An array of safe integers ≥ 0 (token ids). */
  natList: ((v, p) => {
    if (!Array.isArray(v)) fail(p, 'an array of non-negative integers', v);
    v.forEach((n, i) => is.nat(n, `${p}[${i}]`, {}, ''));
  }) as Check,
  /** One of the given strings. */
  oneOf(values: readonly string[]): Check {
    return (v, p) => {
      if (typeof v !== 'string' || !values.includes(v)) fail(p, `one of ${values.join(', ')}`, v);
    };
  },
  /** `check`, or null. */
  orNull(check: Check): Check {
    return (v, p, obj, field) => {
      if (v !== null) check(v, p, obj, field);
    };
  },
  /** A typed array of `ctor`; an array whose byteOffset is not element-aligned is replaced by an aligned copy. */
  typed(ctor: Float32ArrayConstructor | Int32ArrayConstructor): Check {
    return (v, p, obj, field) => {
      if (!(v instanceof ctor)) fail(p, `a ${ctor.name} (binary msgpack typed array; encode with moreTypes: true)`, v);
      if (v.byteOffset % ctor.BYTES_PER_ELEMENT !== 0) obj[field] = v.slice();
    };
  },
  /** An object matching `schema` (checked in place). */
  object(schema: Schema): Check {
    return (v, p) => {
      checkFields(v, p, schema);
    };
  },
  /** A non-empty array of half-open token ranges `{start, end}` with end ≥ start. */
  ranges: ((v, p) => {
    if (!Array.isArray(v) || v.length === 0) fail(p, 'a non-empty array of {start, end} token ranges', v);
    v.forEach((r, i) => {
      const rp = `${p}[${i}]`;
      if (!isPlainObject(r)) fail(rp, 'an object {start, end}', r);
      is.nat(r.start, `${rp}.start`, r, 'start');
      is.nat(r.end, `${rp}.end`, r, 'end');
      if ((r.end as number) < (r.start as number)) throw new ProtocolError(`${rp} is [${r.start}, ${r.end}): end must be ≥ start`, { param: rp });
    });
  }) as Check,
};

/** Throws unless `m[field]` (an array) has `want` elements; `dims` explains `want` in the message. */
export function expectLength(m: Record<string, unknown>, name: string, field: string, want: number, dims: string): void {
  const got = (m[field] as ArrayLike<number>).length;
  if (got !== want) throw new ProtocolError(`${name}.${field} has ${got} elements but ${dims} = ${want}`, { param: `${name}.${field}` });
}

/** Checks the fields of `value` (an object named `name` in messages) against `schema`, in place. */
export function checkFields(value: unknown, name: string, schema: Schema): Record<string, unknown> {
  if (!isPlainObject(value)) fail(name, 'an object', value);
  for (const [field, check] of Object.entries(schema.required)) {
    if (!(field in value)) throw new ProtocolError(`${name}.${field} is missing`, { param: `${name}.${field}` });
    check(value[field], `${name}.${field}`, value, field);
  }
  for (const [field, check] of Object.entries(schema.optional ?? {})) {
    if (value[field] !== undefined) check(value[field], `${name}.${field}`, value, field);
  }
  schema.post?.(value, name);
  return value;
}

/** A validator: returns `value` typed as T when it matches `schema`, else throws a ProtocolError. */
export type Validator<T> = (value: unknown) => T;

/** The validator of objects named `name` with `schema`. */
export function validator<T>(name: string, schema: Schema): Validator<T> {
  return (value) => checkFields(value, name, schema) as T;
}
