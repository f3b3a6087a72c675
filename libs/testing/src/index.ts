/**
 * @starq/testing — helpers shared by the spec and e2e files (seeded PRNG, numeric comparisons,
 * seeded token ids, temp dirs). Only tests import this library; production code never does.
 */
export * from './prng';
export * from './numeric';
export * from './models';
