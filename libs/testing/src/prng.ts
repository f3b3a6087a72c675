/** The deterministic PRNG every test uses (mulberry32), so failures reproduce from a seed. */
export { mulberry32 } from '@starq/model/synthetic/random-checkpoint';
