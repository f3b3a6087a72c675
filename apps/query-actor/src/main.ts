/**
 * query-actor process entry point (configured by STARQ_* environment variables, see
 * libs/cluster/src/actor-config.ts). Prints one line `registered <id>` on stdout when ready;
 * stops cleanly on SIGTERM/SIGINT (deregisters, releases its KV handles).
 */
import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { StarqError } from '@starq/protocol';
import { QueryActorModule, QueryActorService } from './query-actor.module';

export async function main(): Promise<void> {
  try {
    const app = await NestFactory.createApplicationContext(QueryActorModule, { logger: ['error', 'warn'] });
    app.enableShutdownHooks();
    process.stdout.write(`registered ${app.get(QueryActorService).actor.id}\n`);
  } catch (e) {
    if (e instanceof StarqError) {
      process.stderr.write(`query-actor: error [${e.code}]: ${e.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`query-actor: ${(e as Error).stack ?? e}\n`);
    process.exit(1);
  }
}
