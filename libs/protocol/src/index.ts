export * from './errors';
export * from './context-key';
