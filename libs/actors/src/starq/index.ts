export * from './jobs';
export * from './kv-directory';
export * from './remote-host';
export * from './client';
export * from './actor-config';
