/**
 * Nest wiring only: configuration is parsed once (all bad variables reported together) and the
 * QueryActor runs for the module's lifetime. The logic is in query-actor.ts.
 */
import { Inject, Injectable, Module, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { parseActorConfig, type ActorConfig } from '@starq/cluster';
import { QueryActor } from './query-actor';

export const ACTOR_CONFIG = Symbol('ACTOR_CONFIG');

@Injectable()
export class QueryActorService implements OnApplicationBootstrap, OnApplicationShutdown {
  readonly actor: QueryActor;

  constructor(@Inject(ACTOR_CONFIG) cfg: ActorConfig) {
    this.actor = new QueryActor(cfg);
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.actor.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.actor.stop();
  }
}

@Module({
  providers: [{ provide: ACTOR_CONFIG, useFactory: () => parseActorConfig('query') }, { provide: QueryActorService, useFactory: (cfg: ActorConfig) => new QueryActorService(cfg), inject: [ACTOR_CONFIG] }],
})
export class QueryActorModule {}
