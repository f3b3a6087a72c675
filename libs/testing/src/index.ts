/**
 * @starq/testing — helpers shared by the spec and e2e files (seeded PRNG, numeric comparisons,
 * seeded token ids, small test models, temp dirs, timer settling). Only tests import this library; production code never does.
 */
export * from './prng';
export * from './numeric';
export * from './models';
export * from './timers';
