/** Machine description for benchmark programs: the CLI's (apps/cli/src/machine.ts). */
export * from '../../apps/cli/src/machine';
