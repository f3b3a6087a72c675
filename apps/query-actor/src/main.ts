/**
 * query-actor process entry point (configured by STARQ_* environment variables, see
 * libs/cluster/src/actor-config.ts). Prints `registered <id>` and `health http://HOST:PORT` on
 * stdout when ready. SIGTERM/SIGINT start its drain (bounded by
 * STARQ_DRAIN_TIMEOUT_MS), then it stops (deregisters, closes its connections) and exits 0.
 */
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { Drain } from '@starq/cluster';
import { StarqError } from '@starq/protocol';
import { QueryActorModule, QueryActorService } from './query-actor.module';

export async function main(): Promise<void> {
  try {
    const app = await NestFactory.createApplicationContext(QueryActorModule, { logger: ['error', 'warn'] });
    const actor = app.get(QueryActorService).actor;
    const drain = new Drain({
      timeoutMs: actor.cfg.lifecycle.drainTimeoutMs,
      drain: async (deadline) => void (await actor.drain(deadline)),
      stop: () => app.close(),
      log: (line) => process.stderr.write(`query-actor ${actor.id}: ${line}\n`),
    });
    drain.installSignalHandlers();
    if (actor.cfg.lifecycle.exitWithParent) drain.watchParent();
    process.stdout.write(`registered ${actor.id}\nhealth http://${actor.cfg.lifecycle.healthHost}:${actor.healthPort}\n`);
  } catch (e) {
    if (e instanceof StarqError) {
      process.stderr.write(`query-actor: error [${e.code}]: ${e.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`query-actor: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  }
}
