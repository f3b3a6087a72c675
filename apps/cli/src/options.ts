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
    throw new InvalidInputError('invalid_token_ids', `--${flag} must be comma-separated non-negative integers, got "${clip(value)}"`, flag);
  }
  return parts.map(Number);
}

/** The placeholder file name that means standard input. */
export const STDIN = '-';

/**
 * Reads one of a command's `--*-file` flags: a file, or standard input for `-`. Standard input can
 * be read once per command; a second `-` is an error naming both flags.
 */
export class InputFiles {
  private stdinFlag: string | null = null;

  text(file: string, flag: string): string {
    if (file === STDIN) {
      if (this.stdinFlag !== null) {
        throw new InvalidInputError('conflicting_flags', `--${flag} - and --${this.stdinFlag} - both read standard input: give one of them a file`, flag);
      }
      this.stdinFlag = flag;
    }
    return readTextFile(file, flag);
  }

  /** Token ids from a file (or stdin): integers separated by commas and/or whitespace, optionally in [ ]. */
  ids(file: string, flag: string): number[] {
    const body = this.text(file, flag).trim().replace(/^\[([\s\S]*)\]$/, '$1').trim();
    const parts = body.length === 0 ? [] : body.split(/[\s,]+/).filter((p) => p.length > 0);
    const bad = parts.findIndex((p) => !/^\d+$/.test(p));
    if (parts.length === 0 || bad >= 0) {
      throw new InvalidInputError(
        'invalid_token_ids',
        `--${flag} ${file}: expected non-negative integers separated by commas or whitespace, ${parts.length === 0 ? 'got none' : `got "${clip(parts[bad])}" at position ${bad}`}`,
        flag,
      );
    }
    return parts.map(Number);
  }
}

/**
 * The value of a text flag given inline or as a file (`--x TEXT` or `--x-file F`); both is an error.
 */
export function textOrFile(files: InputFiles, inline: string | undefined, file: string | undefined, flag: string): string | undefined {
  if (inline !== undefined && file !== undefined) throw new InvalidInputError('conflicting_flags', `give --${flag} or --${flag}-file, not both`, flag);
  return file !== undefined ? files.text(file, `${flag}-file`) : inline;
}

/** The ids of an ids flag given inline or as a file (`--x-ids 1,2` or `--x-ids-file F`); both is an error. */
export function idsOrFile(files: InputFiles, inline: string | undefined, file: string | undefined, flag: string): number[] | undefined {
  if (inline !== undefined && file !== undefined) throw new InvalidInputError('conflicting_flags', `give --${flag} or --${flag}-file, not both`, flag);
  return file !== undefined ? files.ids(file, `${flag}-file`) : idsFlag(inline, flag);
}

/** The text of a `--*-file` flag: the file, or standard input for `-`. */
export function readTextFile(file: string, flag: string): string {
  if (file === STDIN) return readFd(0, flag);
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new InvalidInputError('file_not_found', `--${flag}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, flag);
  }
}

function readFd(fd: number, flag: string): string {
  try {
    return fs.readFileSync(fd, 'utf8');
  } catch (e) {
    throw new InvalidInputError('stdin_unreadable', `--${flag} -: cannot read standard input: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, flag);
  }
}

/** A value shortened for an error message (ids lists can be megabytes long). */
function clip(s: string, max = 80): string {
  return s.length > max ? `${s.slice(0, max)}… (${s.length} characters)` : s;
}
