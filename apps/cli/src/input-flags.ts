/**
 * The prompt flags `generate` and `submit` share: every text and ids flag has a file form, and
 * every file flag reads standard input for `-` (long ids lists and documents do not belong on a
 * command line).
 */
import type { Command } from 'commander';
import type { PromptInput } from '@starq/model/prompt';
import { idsOrFile, InputFiles, textOrFile } from './options';

/** The flags as Commander parses them. */
export interface InputFlags {
  prompt?: string;
  promptFile?: string;
  context?: string;
  contextFile?: string;
  query?: string;
  queryFile?: string;
  contextIds?: string;
  contextIdsFile?: string;
  queryIds?: string;
  queryIdsFile?: string;
}

/** Adds the prompt flags to `cmd`. */
export function addInputFlags(cmd: Command): Command {
  return cmd
    .option('--prompt <text>', 'prompt text (its last token is the query)')
    .option('--prompt-file <file>', 'read the prompt from a file (- = stdin)')
    .option('--context <text>', 'context text (BOS added when the tokenizer adds it)')
    .option('--context-file <file>', 'read the context from a file (- = stdin)')
    .option('--query <text>', 'query text (no special tokens added)')
    .option('--query-file <file>', 'read the query from a file (- = stdin)')
    .option('--context-ids <ids>', 'context token ids, comma-separated, used verbatim')
    .option('--context-ids-file <file>', 'read the context ids from a file (- = stdin): integers separated by commas or whitespace')
    .option('--query-ids <ids>', 'query token ids, comma-separated, used verbatim')
    .option('--query-ids-file <file>', 'read the query ids from a file (- = stdin)');
}

/** Reads the prompt flags (files and stdin included); conflicting forms of one input are an error. */
export function readInputFlags(f: InputFlags): PromptInput {
  const files = new InputFiles();
  return {
    prompt: textOrFile(files, f.prompt, f.promptFile, 'prompt'),
    context: textOrFile(files, f.context, f.contextFile, 'context'),
    query: textOrFile(files, f.query, f.queryFile, 'query'),
    contextIds: idsOrFile(files, f.contextIds, f.contextIdsFile, 'context-ids'),
    queryIds: idsOrFile(files, f.queryIds, f.queryIdsFile, 'query-ids'),
  };
}
