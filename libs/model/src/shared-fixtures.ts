/**
 * The shared fixtures next to the repository, in `../shared` (docs/DESIGN.md §11): the models
 * `stories260K`, `bench-256` and `niah-1M`, and text under `data/`. They are optional: every user
 * checks `present` and skips (tests) or falls back (benchmarks, the demo) without them.
 */
import fs from 'node:fs';
import path from 'node:path';

/** `../shared` relative to the repository root. */
export const SHARED_DIR = path.resolve(__dirname, '../../../../shared');

export type SharedModelName = 'stories260K' | 'bench-256' | 'niah-1M';

export interface SharedFixture {
  /** Where it is (or would be). */
  path: string;
  /** The path exists, with every file the caller asked for. */
  present: boolean;
}

/** A shared model directory; `present` when it holds config.json and each of `files`. */
export function sharedModel(name: SharedModelName, ...files: string[]): SharedFixture {
  const dir = path.join(SHARED_DIR, 'models', name);
  return { path: dir, present: ['config.json', ...files].every((f) => fs.existsSync(path.join(dir, f))) };
}

/** A shared data file, e.g. `tinystories_sample.txt`. */
export function sharedData(file: string): SharedFixture {
  const p = path.join(SHARED_DIR, 'data', file);
  return { path: p, present: fs.existsSync(p) };
}
