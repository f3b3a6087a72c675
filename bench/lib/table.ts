/** Table printing for benchmark programs: the CLI's (apps/cli/src/table.ts). */
export * from '../../apps/cli/src/table';
