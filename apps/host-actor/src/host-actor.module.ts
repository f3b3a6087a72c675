/**
 * Nest wiring only: configuration is parsed once (all bad variables reported together) and the
 * HostActor runs for the module's lifetime. The logic is in host-actor.ts.
 */
import { Inject, Injectable, Module, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { parseActorConfig, type ActorConfig } from '@starq/cluster';
import { HostActor } from './host-actor';

export const ACTOR_CONFIG = Symbol('ACTOR_CONFIG');

@Injectable()
export class HostActorService implements OnApplicationBootstrap, OnApplicationShutdown {
  readonly actor: HostActor;

  constructor(@Inject(ACTOR_CONFIG) cfg: ActorConfig) {
    this.actor = new HostActor(cfg);
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.actor.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.actor.stop();
  }
}

@Module({
  providers: [{ provide: ACTOR_CONFIG, useFactory: () => parseActorConfig('host') }, { provide: HostActorService, useFactory: (cfg: ActorConfig) => new HostActorService(cfg), inject: [ACTOR_CONFIG] }],
})
export class HostActorModule {}
