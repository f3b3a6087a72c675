/**
 * Errors that reach users. Every error a user can cause carries a stable `code`, the offending
 * `param` (when one parameter is to blame) and a message that says what to do. The CLI maps them to
 * exit code 2 and one stderr line; the gateway maps them to `{"error":{"code","message","param"}}`.
 */
export class StarqError extends Error {
  /** Stable machine-readable code, e.g. `invalid_block_size`. */
  readonly code: string;
  /** The offending parameter (CLI flag / JSON field / file), if one is to blame. */
  readonly param: string | null;
  /** Suggested HTTP status for the gateway. @defaultValue 400 */
  readonly status: number;

  constructor(code: string, message: string, opts: { param?: string | null; status?: number; cause?: unknown } = {}) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = new.target.name;
    this.code = code;
    this.param = opts.param ?? null;
    this.status = opts.status ?? 400;
  }

  toJSON(): { code: string; message: string; param: string | null } {
    return { code: this.code, message: this.message, param: this.param };
  }
}

/** The user asked for something invalid (bad flag, bad field, out-of-range value). */
export class InvalidInputError extends StarqError {
  constructor(code: string, message: string, param: string | null = null) {
    super(code, message, { param, status: 400 });
  }
}

/** A model directory is missing, unreadable, malformed or uses something we do not support. */
export class ModelLoadError extends StarqError {
  constructor(code: string, message: string, param: string | null = 'model') {
    super(code, message, { param, status: 400 });
  }
}

/** The request does not fit: model position limit, sliding window, or KV memory. */
export class CapacityError extends StarqError {
  constructor(code: string, message: string, param: string | null = null) {
    super(code, message, { param, status: 422 });
  }
}
