/**
 * The actors of a starq cluster as the generic registry (@starq/actors) sees them: three kinds,
 * what each declares at registration (model, KV budget, threads, per-token KV size, position
 * limit) and what it reports while running (blocks and bytes of KV held, busy).
 */
import type { Redis } from 'ioredis';
import type { ServingSnapshot } from '@starq/model/serving/serving-metrics';
import { ActorRegistry, type ActorRecord, type ActorRegistryOptions, type RegisterInput } from '@starq/actors';

/** Host actors hold KV blocks; query actors run phase 2; gateways serve HTTP. */
export type ClusterActorKind = 'host' | 'query' | 'gateway';

export const CLUSTER_ACTOR_KINDS: readonly ClusterActorKind[] = ['host', 'query', 'gateway'];

/** What an actor can take on (declared at registration). */
export interface ClusterActorCapacity {
  /** Model served (hosts, query actors); empty for a gateway. */
  model: string;
  /** KV-cache memory budget in bytes. */
  freeKvBytes: number;
  /** Compute threads. */
  threads: number;
  /** KV bytes one context token costs on this actor (all layers, K and V). */
  kvBytesPerToken?: number;
  /** The model's position limit (max_position_embeddings, or the sliding window if smaller). */
  maxPositions?: number;
  /** ONNX Runtime execution provider the actor computes on (hosts, query actors). */
  executionProvider?: 'cpu' | 'cuda';
  /** CUDA device ordinal, when the provider is `cuda`. */
  cudaDeviceId?: number;
}

/** What an actor is doing now (updated with {@link ClusterRegistry.update}). */
export interface ClusterActorStatus {
  /** KV blocks held. */
  blocks: number;
  /** Bytes of KV held. */
  kvBytes: number;
  busy: boolean;
  /**
   * Draining: takes no new work (a host: no block jobs, no re-encodes of others' blocks) and is
   * about to leave; what it holds is being handed to other actors. @defaultValue false
   */
  draining?: boolean;
  /** Query actors: the serving loop's running set, queue and step statistics. */
  serving?: ServingSnapshot;
}

export type ClusterActorRecord = ActorRecord<ClusterActorKind, ClusterActorCapacity, ClusterActorStatus>;

/** The status of an actor that holds nothing and runs nothing. */
export const IDLE_STATUS: Readonly<ClusterActorStatus> = { blocks: 0, kvBytes: 0, busy: false };

/** Registration of a cluster actor; `status` @defaultValue {@link IDLE_STATUS} */
export type ClusterRegisterInput = Omit<RegisterInput<ClusterActorKind, ClusterActorCapacity, ClusterActorStatus>, 'status'> & { status?: ClusterActorStatus };

/** The registry of one cluster (one key prefix): accepts only {@link CLUSTER_ACTOR_KINDS}. */
export class ClusterRegistry extends ActorRegistry<ClusterActorKind, ClusterActorCapacity, ClusterActorStatus> {
  constructor(redis: Redis, opts: Omit<ActorRegistryOptions<ClusterActorKind>, 'kinds'> = {}) {
    super(redis, { ...opts, kinds: CLUSTER_ACTOR_KINDS });
  }

  override register(input: ClusterRegisterInput): Promise<ClusterActorRecord> {
    return super.register({ ...input, status: input.status ?? { ...IDLE_STATUS } });
  }
}
