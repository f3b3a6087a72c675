/**
 * Flag parsing helpers: every bad value becomes an `InvalidInputError` naming the flag, which the
 * CLI turns into exit code 2 and one line on stderr.
 */
import fs from 'node:fs';
import { InvalidInputError } from '@starq/protocol/errors';

export function intFlag(value: string | undefined, flag: string, min = 0): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min) {
    throw new InvalidInputError('invalid_flag', `--${flag} must be an integer ≥ ${min}, got "${value}"`, flag);
  }
  return n;
}

export function floatFlag(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidInputError('invalid_flag', `--${flag} must be a number, got "${value}"`, flag);
  return n;
}

export function idsFlag(value: string | undefined, flag: string): number[] | undefined {
  if (value === undefined) return undefined;
  const parts = value.split(',').map((s) => s.trim());
  if (parts.length === 0 || parts.some((p) => !/^\d+$/.test(p))) {
    throw new InvalidInputError('invalid_token_ids', `--${flag} must be comma-separated non-negative integers, got "${value}"`, flag);
  }
  return parts.map(Number);
}

export function readTextFile(file: string, flag: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new InvalidInputError('file_not_found', `--${flag}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, flag);
  }
}
