/**
 * gateway process entry point (configured by STARQ_* environment variables, see config.ts).
 * Prints one line `listening http://HOST:PORT` on stdout when it serves. SIGTERM/SIGINT start its
 * drain: /ready turns 503, new jobs get 503, open SSE streams and requests run until their jobs end
 * (or STARQ_DRAIN_TIMEOUT_MS runs out); then it closes its connections and exits 0.
 */
import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { Drain } from '@starq/cluster';
import { StarqError } from '@starq/protocol';
import { parseGatewayConfig } from './config';
import { GatewayModule, GatewayService, JsonErrorFilter } from './gateway.module';
import type { Req, Res } from './http';

export async function main(): Promise<void> {
  try {
    const cfg = parseGatewayConfig();
    const app = await NestFactory.create(GatewayModule.forConfig(cfg), new ExpressAdapter(), { bodyParser: false, forceCloseConnections: true, logger: ['error', 'warn'] });
    app.getHttpAdapter().getInstance().disable('x-powered-by');
    app.useGlobalFilters(new JsonErrorFilter());
    const svc = app.get(GatewayService);
    const drain = new Drain({
      timeoutMs: cfg.drainTimeoutMs,
      drain: async (deadline) => {
        const { open } = await svc.gateway.drain(deadline);
        process.stderr.write(`gateway: ${cfg.gatewayId}: drained${open > 0 ? `, closing ${open} response(s) still open` : ''}\n`);
      },
      stop: () => app.close(),
      log: (line) => process.stderr.write(`gateway: ${cfg.gatewayId}: ${line}\n`),
    });
    drain.installSignalHandlers();
    if (cfg.exitWithParent) drain.watchParent();
    app.use((req: Req, res: Res, next: () => void) => {
      svc.gateway.track(res);
      res.once('finish', () => svc.gateway.metrics?.http.inc({ method: req.method ?? '', status: String(res.statusCode) }));
      next();
    });
    await app.listen(cfg.port, cfg.host);
    const server = app.getHttpServer() as Server;
    server.requestTimeout = 0; // long SSE / long generations: no whole-request deadline
    const port = (server.address() as AddressInfo).port;
    if (!svc.gateway.auth.enabled) process.stderr.write('gateway: warning: no API keys configured (STARQ_API_KEYS): the API is open to anyone who can reach it\n');
    process.stderr.write(`gateway: ${cfg.gatewayId}: model ${cfg.modelId}, prefix ${cfg.prefix}, ${cfg.apiKeys.length} API key(s), admin key ${cfg.adminKey ? 'set' : 'not set'}\n`);
    process.stdout.write(`listening http://${cfg.host}:${port}\n`);
  } catch (e) {
    if (e instanceof StarqError) {
      process.stderr.write(`gateway: error [${e.code}]: ${e.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`gateway: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  }
}
