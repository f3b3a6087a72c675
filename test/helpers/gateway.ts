/**
 * Helpers for the gateway end-to-end tests: raw HTTP requests (node:http, so oversized and
 * malformed bodies can be sent exactly as written), an SSE reader, a gateway process, and a random
 * checkpoint with a chat template.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { writeRandomCheckpoint, type RandomCheckpointOptions } from '@starq/model/synthetic/random-checkpoint';
import { jsonData, sseEvents } from '@starq/sse';
import { ROOT, spawnTracked, until } from './cluster';

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** Parsed JSON body (undefined when not JSON). */
  json: any;
}

export interface RequestOptions {
  key?: string | null;
  /** Object → JSON; string/Buffer → sent as is. */
  body?: unknown;
  headers?: Record<string, string>;
  /** Send the body with chunked encoding (no Content-Length). */
  chunked?: boolean;
}

/** One HTTP request; resolves with whatever the server answered (even if it closed early). */
export function request(base: string, method: string, urlPath: string, o: RequestOptions = {}): Promise<HttpResult> {
  const url = new URL(urlPath, base);
  const payload = o.body === undefined ? undefined : typeof o.body === 'string' || Buffer.isBuffer(o.body) ? Buffer.from(o.body as string) : Buffer.from(JSON.stringify(o.body));
  const headers: Record<string, string> = { ...(o.key ? { Authorization: `Bearer ${o.key}` } : {}), ...(payload ? { 'Content-Type': 'application/json' } : {}), ...o.headers };
  if (payload && !o.chunked) headers['Content-Length'] = String(payload.length);
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: any;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', (e) => {
      if (!answered) reject(e); // an early answer (413) may reset the upload: that is fine
    });
    if (payload && o.chunked) {
      // Several chunks, so the server sees the size grow past its limit while reading.
      const step = 64 * 1024;
      for (let i = 0; i < payload.length; i += step) req.write(payload.subarray(i, i + step));
      req.end();
    } else req.end(payload);
  });
}

/** An event of a gateway stream, its data parsed as JSON (`[DONE]` kept as the string). */
export interface SseEvent {
  name: string;
  data: any;
}

/**
 * Reads an SSE response until the server ends it (or `stopWhen` returns true), calling `onEvent`
 * for each event. Resolves with every event received.
 */
export async function readSse(base: string, urlPath: string, key: string | null, o: { onEvent?: (e: SseEvent) => void; stopWhen?: (e: SseEvent) => boolean; timeoutMs?: number } = {}): Promise<SseEvent[]> {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), o.timeoutMs ?? 120000);
  const events: SseEvent[] = [];
  try {
    const res = await fetch(new URL(urlPath, base), { headers: { Accept: 'text/event-stream', ...(key ? { Authorization: `Bearer ${key}` } : {}) }, signal: ctrl.signal });
    if (res.status !== 200 || !res.body) throw new Error(`SSE ${urlPath}: HTTP ${res.status}: ${await res.text()}`);
    for await (const raw of sseEvents(res.body as unknown as AsyncIterable<Uint8Array>)) {
      const e: SseEvent = { name: raw.name, data: jsonData(raw) };
      events.push(e);
      o.onEvent?.(e);
      if (o.stopWhen?.(e)) {
        ctrl.abort();
        return events;
      }
    }
    return events;
  } catch (e) {
    if ((e as Error).name === 'AbortError' && o.stopWhen && events.length > 0 && o.stopWhen(events[events.length - 1])) return events;
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** A gateway process (`node bin/starq-gateway`) with the given STARQ_* variables. */
export async function startGateway(env: Record<string, string>): Promise<{ url: string; proc: ReturnType<typeof spawnTracked>['proc']; out: () => string }> {
  const g = spawnTracked([path.join(ROOT, 'bin/starq-gateway')], { ...process.env, STARQ_GATEWAY_PORT: '0', ...env });
  const url = await until(
    'the gateway to listen',
    async () => {
      if (g.proc.exitCode !== null) throw new Error(`gateway exited (${g.proc.exitCode}):\n${g.out()}`);
      return /listening (http:\/\/\S+)/.exec(g.stdout())?.[1] ?? null;
    },
    60000,
  );
  return { url, proc: g.proc, out: g.out };
}

export const CHAT_TEMPLATE = '{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }} {% endfor %}{% if add_generation_prompt %}assistant:{% endif %}';

/** A random checkpoint; with `chatTemplate`, its tokenizer_config.json gets that template. */
export function writeModel(dir: string, opts: RandomCheckpointOptions, chatTemplate: string | null): string {
  writeRandomCheckpoint(dir, opts);
  if (chatTemplate !== null) {
    const file = path.join(dir, 'tokenizer_config.json');
    const tc = JSON.parse(fs.readFileSync(file, 'utf8'));
    fs.writeFileSync(file, JSON.stringify({ ...tc, chat_template: chatTemplate }, null, 2));
  }
  return dir;
}

/** Job statuses after which nothing changes. */
export const TERMINAL_STATUSES: ReadonlySet<string> = new Set(['completed', 'failed', 'cancelled']);

/** The native jobs API of one gateway, as one key sees it. */
export class JobsApi {
  constructor(private readonly url: () => string, private readonly key: string) {}

  /** POST /v1/jobs; returns the job id (throws unless 202). */
  async submit(body: unknown): Promise<string> {
    const r = await request(this.url(), 'POST', '/v1/jobs', { key: this.key, body });
    if (r.status !== 202) throw new Error(`POST /v1/jobs: ${r.status} ${r.text}`);
    return r.json.id;
  }

  /** GET /v1/jobs/:id (throws unless 200). */
  async get(id: string): Promise<any> {
    const r = await request(this.url(), 'GET', `/v1/jobs/${id}`, { key: this.key });
    if (r.status !== 200) throw new Error(`GET /v1/jobs/${id}: ${r.status} ${r.text}`);
    return r.json;
  }

  /** Polls until the job is completed, failed or cancelled; returns its view. */
  finished(id: string, timeoutMs = 120000): Promise<any> {
    return until(`job ${id} to finish`, async () => {
      const j = await this.get(id);
      return TERMINAL_STATUSES.has(j.status) ? j : null;
    }, timeoutMs);
  }
}
