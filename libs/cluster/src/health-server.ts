/**
 * A process's probe and metrics endpoints on their own port (the actors have no other HTTP server):
 *
 * - `GET /health` — 200 while the process runs (liveness; stays 200 while it drains, so that the
 *   kubelet does not kill a drain in progress).
 * - `GET /ready` — 200 when every readiness check passes, else 503; the body lists the checks.
 * - `GET /metrics` — the Prometheus registry in the text exposition format.
 *
 * Anything else is 404; methods other than GET/HEAD are 405. Errors leave as the JSON error body
 * the gateway uses (`{"error":{"code","message","param","type"}}`).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

/** One readiness condition and whether it holds now. */
export interface ReadinessCheck {
  name: string;
  ok: boolean;
  /** Why it fails (or what it saw), for humans. */
  detail?: string;
}

export interface HealthServerOptions {
  /** Listen address. */
  host: string;
  /** Port; 0 picks a free one ({@link HealthServer.start} returns it). */
  port: number;
  /** Runs at every /ready; the process is ready when every check is ok. */
  readiness: () => Promise<ReadinessCheck[]>;
  /** What /metrics exposes. */
  metrics: Registry;
  /** Extra fields of the /health body (e.g. actor id, role, draining). @defaultValue none */
  describe?: () => Record<string, unknown>;
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function errorBody(code: string, message: string, type: 'invalid_request_error' | 'server_error') {
  return { error: { code, message, param: null, type } };
}

export class HealthServer {
  private server: http.Server | null = null;

  constructor(private readonly opts: HealthServerOptions) {}

  /** Starts listening; resolves with the bound port. */
  async start(): Promise<number> {
    const server = http.createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.server = server;
    return (server.address() as AddressInfo).port;
  }

  /** Stops listening and closes idle connections. */
  async stop(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      const url = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, errorBody('method_not_allowed', `${req.method} is not allowed: use GET`, 'invalid_request_error'));
      if (url === '/health') return send(res, 200, { status: 'ok', ...(this.opts.describe?.() ?? {}) });
      if (url === '/ready') {
        const checks = await this.opts.readiness();
        const failing = checks.filter((c) => !c.ok);
        if (failing.length === 0) return send(res, 200, { status: 'ready', checks });
        const why = failing.map((c) => `${c.name}${c.detail ? ` (${c.detail})` : ''}`).join(', ');
        return send(res, 503, { status: 'not_ready', checks, ...errorBody('not_ready', `not ready: ${why}`, 'server_error') });
      }
      if (url === '/metrics') {
        const body = await this.opts.metrics.metrics();
        res.writeHead(200, { 'Content-Type': this.opts.metrics.contentType });
        return void res.end(body);
      }
      send(res, 404, errorBody('not_found', `no route GET ${url} (try /health, /ready, /metrics)`, 'invalid_request_error'));
    } catch (e) {
      if (!res.headersSent) send(res, 500, errorBody('internal_error', (e as Error).message, 'server_error'));
      else res.end();
    }
  }
}
