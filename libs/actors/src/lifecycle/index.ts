export * from './lifecycle-config';
