/**
 * @starq/report — what benchmark and evaluation reports are made of: plain-text and Markdown
 * tables, and a description of the machine a run was measured on.
 */
export * from './table';
export * from './machine';
