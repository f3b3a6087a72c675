/**
 * @starq/attention — the whole Star Attention algorithm as pure math (docs/DESIGN.md §2–§5):
 *   partial.ts    the (O, LSE) partial-result type and its empty-row convention
 *   merge.ts      exact max-shifted LSE merge (batch and streaming)
 *   reference.ts  float64 attention-with-LSE reference, position-based visibility, GQA
 *   plan.ts       blocks, anchors, phase-1 sequences, host assignment
 */
export * from './partial';
export * from './merge';
export * from './reference';
export * from './plan';
export * from './host';
export * from './star';
export * from './ring';
export * from './modes';
