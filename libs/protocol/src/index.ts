export * from './errors';
export * from './context-key';
export * from './validate';
export * from './messages';
export * from './keys';
export * from './kv-handle';
