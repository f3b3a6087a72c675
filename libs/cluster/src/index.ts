/**
 * @starq/cluster — starq on the actor runtime (@starq/actors): the request client, job and event
 * shapes, the actor registry's kinds and payloads, KV-handle directory, context store, the remote
 * view of a host actor, actor process configuration, and launching a local process cluster.
 */
export * from './errors';
export * from './registry';
export * from './jobs';
export * from './context-store';
export * from './kv-directory';
export * from './host-calls';
export * from './remote-host';
export * from './client';
export * from './failure';
export * from './reaper';
export * from './actor-wait';
export * from './actor-config';
export * from './lifecycle-config';
export * from './health-server';
export * from './drain';
export * from './actor-health';
export * from './launcher/gateway-process';
export * from './launcher/process-cluster';
export * from './cluster-block-locator';
export * from './launcher/supervisor';
export * from './launcher/child-process';
export * from './launcher/redis-server';
export * from './actor-status';
export * from './actor-boot';
