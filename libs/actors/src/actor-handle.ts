import type { ActorClient, CallOptions } from './actor-client';

/** Address of one actor, bound to a client: `handle.call('attend', args)`. Cheap to create. */
export class ActorHandle {
  constructor(
    private readonly client: ActorClient,
    readonly actorId: string,
  ) {}

  /**
   * Calls `method` on the actor (at most once: no automatic retry).
   * @throws ActorDiedError, ActorTimeoutError, RemoteCallError, CallAbortedError, ActorClientClosedError
   */
  call<T = unknown>(method: string, args?: unknown, opts?: CallOptions): Promise<T> {
    return this.client.call<T>(this.actorId, method, args, opts);
  }

  /** Publishes a one-way message of `topic` to the actor; resolves to the number of receivers. */
  send(topic: string, body?: unknown): Promise<number> {
    return this.client.send(this.actorId, topic, body);
  }
}
