/**
 * HTTP plumbing shared by every route: JSON error bodies, reading a bounded JSON body, and a small
 * Server-Sent Events writer. Works on plain Node request/response objects (Express's extend them).
 *
 * Every error a client sees is `{"error":{"code","message","param","type"}}` with the status the
 * error carries (StarqError.status); `type` is the OpenAI error family, so OpenAI clients classify
 * it. Anything else becomes a 500 `internal_error` (details go to the log, never to the client).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isRedisDown } from '@starq/cluster/failure';
import { StarqError } from '@starq/protocol';

export type Req = IncomingMessage & { params?: Record<string, string>; query?: Record<string, unknown> };
export type Res = ServerResponse;

export class HttpError extends StarqError {
  constructor(status: number, code: string, message: string, param: string | null = null) {
    super(code, message, { param, status });
  }
}

export interface ErrorBody {
  error: { code: string; message: string; param: string | null; type: string };
}

function errorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/** Status and body for any thrown value. */
export function toErrorResponse(e: unknown, log: (msg: string) => void = (m) => process.stderr.write(m + '\n')): { status: number; body: ErrorBody } {
  if (e instanceof StarqError) {
    const status = Number.isInteger(e.status) && e.status >= 400 && e.status <= 599 ? e.status : 500;
    if (status >= 500 && !(e instanceof HttpError)) log(`gateway: ${status} [${e.code}] ${e.message}`);
    return { status, body: { error: { code: e.code, message: e.message, param: e.param, type: errorType(status) } } };
  }
  if (isRedisDown(e)) {
    // Driver text never reaches a client: the outage is the answer.
    log(`gateway: 503 [redis_unavailable] ${(e as Error).message}`);
    return { status: 503, body: { error: { code: 'redis_unavailable', message: 'Redis is not reachable: retry when it is back (GET /ready tells)', param: null, type: 'server_error' } } };
  }
  log(`gateway: internal error: ${(e as Error)?.stack ?? String(e)}`);
  return { status: 500, body: { error: { code: 'internal_error', message: 'internal error in the gateway (see its log)', param: null, type: 'server_error' } } };
}

export function sendJson(res: Res, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export function sendError(res: Res, e: unknown, headers: Record<string, string> = {}): void {
  const { status, body } = toErrorResponse(e);
  const extra: Record<string, string> = { ...headers };
  if (status === 401) extra['WWW-Authenticate'] = 'Bearer';
  if (e instanceof StarqError && (status === 429 || e.code === 'intake_busy')) extra['Retry-After'] = '1';
  if (e instanceof HttpError && e.code === 'body_too_large') extra.Connection = 'close';
  sendJson(res, status, body, extra);
}

/**
 * Refuses a body that is not declared as JSON: a Content-Type other than `application/json` (or
 * a `+json` type), or a charset other than UTF-8. A request without Content-Type is read as JSON.
 * @throws HttpError 415 `unsupported_media_type` (param `Content-Type`).
 */
export function requireJsonContentType(req: Req): void {
  const ct = req.headers['content-type'];
  if (ct === undefined || ct.trim() === '') return;
  const [type, ...params] = ct.split(';').map((x) => x.trim().toLowerCase());
  const charset = params.find((p) => p.startsWith('charset='))?.slice(8).replace(/"/g, '');
  if (!(type === 'application/json' || /^application\/[a-z0-9.+-]+\+json$/.test(type)) || (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8')) {
    throw new HttpError(415, 'unsupported_media_type', `Content-Type ${JSON.stringify(ct)} is not accepted: send the body as JSON with Content-Type: application/json (UTF-8)`, 'Content-Type');
  }
}

/**
 * Reads a JSON request body of at most `limit` bytes, as bytes (parsing happens off the event
 * loop, in the intake workers).
 * @throws HttpError 415 (see {@link requireJsonContentType}); 413 `body_too_large`; 400
 *   `invalid_body` when the upload breaks off.
 */
export async function readBody(req: Req, limit: number): Promise<Buffer> {
  requireJsonContentType(req);
  const tooLarge = () => new HttpError(413, 'body_too_large', `the request body exceeds the gateway's limit of ${limit} bytes (STARQ_MAX_BODY_BYTES)`, null);
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.pause();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  await new Promise<void>((resolve, reject) => {
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.off('data', onData);
        req.pause();
        reject(tooLarge());
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.once('end', () => resolve());
    req.once('error', (e) => reject(new HttpError(400, 'invalid_body', `could not read the request body: ${e.message}`)));
  });
  return Buffer.concat(chunks);
}

/**
 * The body as a JSON object.
 * @throws HttpError 400 `invalid_utf8`, `invalid_json`, `invalid_body`, `invalid_unicode`.
 */
export function parseJsonObject(bytes: Uint8Array): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    throw new HttpError(400, 'invalid_utf8', `the request body is not valid UTF-8 (first bad byte at offset ${at}): send UTF-8 JSON`, null);
  }
  if (text.trim() === '') throw new HttpError(400, 'invalid_json', 'the request body is empty: send a JSON object');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new HttpError(400, 'invalid_json', `the request body is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HttpError(400, 'invalid_body', `the request body must be a JSON object, got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}`);
  }
  const bad = loneSurrogatePath(value, '');
  if (bad !== null) {
    throw new HttpError(400, 'invalid_unicode', `${bad || 'a key'} contains a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape): text must be valid Unicode`, bad || null);
  }
  return value as Record<string, unknown>;
}

/** In `u` mode a surrogate pair is one code point, so `\p{Cs}` matches lone surrogates only. */
const LONE_SURROGATE = /\p{Cs}/u;

/** Path of the first string (or key) holding a lone surrogate, or null. */
function loneSurrogatePath(v: unknown, at: string): string | null {
  if (typeof v === 'string') return LONE_SURROGATE.test(v) ? at : null;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const r = typeof v[i] === 'object' || typeof v[i] === 'string' ? loneSurrogatePath(v[i], `${at}[${i}]`) : null;
      if (r !== null) return r;
    }
    return null;
  }
  if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) {
      const here = at ? `${at}.${k}` : k;
      if (LONE_SURROGATE.test(k)) return here;
      const r = loneSurrogatePath(x, here);
      if (r !== null) return r;
    }
  }
  return null;
}

function firstInvalidUtf8(b: Uint8Array): number {
  for (let i = 0; i < b.length; ) {
    const c = b[i];
    const n = c < 0x80 ? 0 : c >= 0xc2 && c < 0xe0 ? 1 : c >= 0xe0 && c < 0xf0 ? 2 : c >= 0xf0 && c < 0xf5 ? 3 : -1;
    if (n < 0) return i;
    for (let k = 1; k <= n; k++) if (i + k >= b.length || (b[i + k] & 0xc0) !== 0x80) return i;
    i += n + 1;
  }
  return b.length;
}

/**
 * Reads and parses a small JSON object body on the event loop (admin endpoints). Request bodies
 * that may be large (jobs, completions, chat) go through the intake workers instead.
 * @throws HttpError as {@link readBody} and {@link parseJsonObject}.
 */
export async function readJsonBody(req: Req, limit: number): Promise<Record<string, unknown>> {
  return parseJsonObject(await readBody(req, limit));
}

/** Default interval of the keep-alive comment (STARQ_SSE_KEEPALIVE_MS). */
export const SSE_KEEPALIVE_MS = 15000;

/**
 * Server-Sent Events on one response. A comment line (`: ping`) every `keepAliveMs` (15 s by
 * default) keeps proxies and load balancers from closing a stream that is quiet (a long phase 1);
 * clients ignore comments.
 */
export class SseWriter {
  private ping: NodeJS.Timeout;
  private isClosed = false;
  private readonly closeHandlers: (() => void)[] = [];

  constructor(private readonly res: Res, keepAliveMs = SSE_KEEPALIVE_MS) {
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache, no-transform', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
    res.flushHeaders?.();
    this.ping = setInterval(() => this.write(': ping\n\n'), keepAliveMs);
    this.ping.unref();
    res.once('close', () => {
      this.isClosed = true;
      clearInterval(this.ping);
      for (const h of this.closeHandlers) h();
    });
  }

  /** True once the client went away or end() was called. */
  get closed(): boolean {
    return this.isClosed || this.res.writableEnded;
  }

  /** Called when the connection closes (client disconnect or end()). */
  onClose(h: () => void): void {
    this.closeHandlers.push(h);
  }

  /** A named event with a JSON payload and, when given, an `id:` (what Last-Event-ID echoes). */
  event(name: string, data: unknown, id?: string): void {
    this.write(`${id !== undefined ? `id: ${id}\n` : ''}event: ${name}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  /** The reconnection delay EventSource clients should use (dispatches no event). */
  retry(ms: number): void {
    this.write(`retry: ${Math.max(0, Math.round(ms))}\n\n`);
  }

  /** An unnamed `data:` line (the OpenAI streaming format). */
  data(payload: unknown): void {
    this.write(`data: ${typeof payload === 'string' ? payload : JSON.stringify(payload)}\n\n`);
  }

  end(): void {
    clearInterval(this.ping);
    if (!this.res.writableEnded) this.res.end();
  }

  private write(s: string): void {
    if (!this.closed) this.res.write(s);
  }
}
