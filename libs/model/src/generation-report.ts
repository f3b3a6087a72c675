/**
 * The result of one generation as users see it: the object `starq generate --json` prints and
 * the `result` of a gateway job (docs/DESIGN.md §10). Declared once; the cluster's request result
 * extends it.
 */
import type { Mode } from '@starq/attention';
import type { GenerationResult } from './generate';

export interface GenerationReport extends GenerationResult {
  mode: Mode;
  contextTokens: number;
  queryTokens: number;
  blockSize: number;
  anchorSize: number;
  /** Hosts that held context blocks. */
  hosts: number;
  /** `generatedIds` decoded with special tokens kept; null where no tokenizer is available. */
  text: string | null;
}

/** The report's fields of `r` (extra fields dropped), in the documented order, with `text`. */
export function generationReport(r: Omit<GenerationReport, 'text'>, text: string | null): GenerationReport {
  return {
    mode: r.mode,
    contextTokens: r.contextTokens,
    queryTokens: r.queryTokens,
    blockSize: r.blockSize,
    anchorSize: r.anchorSize,
    hosts: r.hosts,
    generatedIds: r.generatedIds,
    text,
    finishReason: r.finishReason,
    timings: r.timings,
  };
}
