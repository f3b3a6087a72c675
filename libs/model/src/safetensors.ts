/**
 * Safetensors reader (single `model.safetensors` or sharded `model.safetensors.index.json`) and a
 * small writer used by the test-checkpoint generator.
 *
 * File format: `u64 LE header length N` ‖ `N bytes of JSON header` ‖ `data`. The header maps tensor
 * names to `{dtype, shape, data_offsets: [begin, end]}` with offsets relative to the start of the
 * data section; an optional `__metadata__` entry holds string metadata.
 *
 * The reader keeps one file descriptor per shard and reads each tensor with positional reads
 * directly into its destination (F32) or through a small scratch buffer (F16/BF16), so a tensor is
 * never held twice in memory. Every header is validated against the file size when it is opened:
 * a truncated download fails fast with the file, the tensor and the byte counts in the message.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ModelLoadError } from '@starq/protocol/errors';
import { readJsonFile } from './config';

/** Float dtypes we can load (everything is converted to float32). */
export type FloatDtype = 'F32' | 'F16' | 'BF16';
export const FLOAT_DTYPES: readonly FloatDtype[] = ['F32', 'F16', 'BF16'];

/** Bytes per element of every dtype the safetensors format defines (for offset validation). */
const DTYPE_BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};

/** Single-file and index file names of the HF layout. */
export const SAFETENSORS_FILE = 'model.safetensors';
export const SAFETENSORS_INDEX_FILE = 'model.safetensors.index.json';

/** Refuse absurd header sizes before allocating (the reference implementation caps at 100 MB). */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;
/** Positional reads are issued in pieces of at most this many bytes. */
const READ_CHUNK_BYTES = 16 * 1024 * 1024;

/** Public description of one stored tensor. */
export interface TensorInfo {
  dtype: string;
  shape: number[];
  /** Absolute path of the file holding it. */
  file: string;
}

/** An opened checkpoint: tensor lookup and float32 reads across one or more files. */
export interface SafetensorsIndex {
  /** Model directory (or the file's directory when opened with {@link openSafetensorsFile}). */
  readonly dir: string;
  /** Absolute paths of the opened files. */
  readonly files: readonly string[];
  /** Tensor names (index order for sharded checkpoints, header order otherwise). */
  names(): string[];
  has(name: string): boolean;
  /** @throws ModelLoadError `invalid_weights` when the tensor does not exist */
  info(name: string): TensorInfo;
  /**
   * Reads a tensor converted to float32 (row-major, `shape` order).
   * @throws ModelLoadError `unsupported_model` for dtypes other than F32/F16/BF16
   */
  readFloat32(name: string): Float32Array;
  /** Closes all file descriptors. Idempotent. */
  close(): void;
}

// ---------------------------------------------------------------------------------------------
// Scalar conversions (exported for tests and for the writer)
// ---------------------------------------------------------------------------------------------

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Bits of a float32 value. */
function f32Bits(x: number): number {
  f32Scratch[0] = x;
  return u32Scratch[0];
}
/** float32 value of some bits. */
function bitsF32(bits: number): number {
  u32Scratch[0] = bits >>> 0;
  return f32Scratch[0];
}

/**
 * IEEE half (binary16) bits → number. Exact for every input: zeros, subnormals (m·2⁻²⁴), normals,
 * ±Infinity, and NaN (payload kept in the top mantissa bits).
 */
export function f16ToFloat32(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) {
    // zero or subnormal: mant · 2^-24 (exactly representable in float32)
    const v = mant * 5.960464477539063e-8;
    return sign ? -v : v;
  }
  if (exp === 0x1f) return bitsF32(sign | 0x7f800000 | (mant << 13)); // inf / nan
  return bitsF32(sign | ((exp + 112) << 23) | (mant << 13)); // rebias 15 → 127
}

/**
 * float32 value (the number is first rounded to float32) → IEEE half bits, round-to-nearest-even.
 * Overflow gives ±Infinity, underflow gives (signed) subnormals or zero, NaN stays a quiet NaN.
 */
export function float32ToF16(x: number): number {
  const bits = f32Bits(x);
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return mant ? sign | 0x7e00 | (mant >>> 13) : sign | 0x7c00; // nan / inf
  const e = exp - 112; // half exponent (bias 15) before rounding
  if (e >= 31) return sign | 0x7c00; // overflow → inf
  if (e <= 0) {
    // Half subnormal (or zero): h = m · 2^(e-14) with m the 24-bit significand incl. implicit 1.
    const shift = 14 - e;
    if (shift > 24) return sign; // < half of the smallest subnormal → ±0
    const m = mant | 0x800000;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (h & 1) === 1)) h += 1; // may carry into the min normal
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h += 1; // carry may reach inf: correct
  return sign | h;
}

/** bfloat16 bits → number (exact: bf16 is the top half of a float32). */
export function bf16ToFloat32(h: number): number {
  return bitsF32((h & 0xffff) << 16);
}

/** float32 value → bfloat16 bits, round-to-nearest-even; NaN stays a quiet NaN. */
export function float32ToBf16(x: number): number {
  const bits = f32Bits(x);
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return (bits >>> 16) | 0x40;
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/** What a float32 array becomes after being stored as `dtype` and read back. */
export function roundToDtype(data: Float32Array, dtype: FloatDtype): Float32Array {
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    out[i] =
      dtype === 'F32' ? data[i] : dtype === 'F16' ? f16ToFloat32(float32ToF16(data[i])) : bf16ToFloat32(float32ToBf16(data[i]));
  }
  return out;
}

/** Lazily built half → float32 lookup table (65536 entries, 256 KiB). */
let f16Table: Float32Array | null = null;
function getF16Table(): Float32Array {
  if (f16Table === null) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToFloat32(h);
  }
  return f16Table;
}

function assertLittleEndianHost(): void {
  if (os.endianness() !== 'LE') {
    throw new Error('safetensors: only little-endian hosts are supported');
  }
}

// ---------------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------------

interface Entry {
  name: string;
  dtype: string;
  shape: number[];
  numel: number;
  /** Absolute position of the first byte in the file. */
  position: number;
  byteLength: number;
  shard: ShardFile;
}

function weightsError(message: string): ModelLoadError {
  return new ModelLoadError('invalid_weights', message);
}

/** One opened `.safetensors` file with its validated header. */
class ShardFile {
  readonly entries = new Map<string, Entry>();
  private fd: number | null;

  constructor(readonly file: string) {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw weightsError(
        err.code === 'ENOENT' ? `weights file not found: ${file}` : `cannot open weights file ${file}: ${err.message}`,
      );
    }
    this.fd = fd;
    try {
      this.parseHeader(fd);
    } catch (e) {
      this.close();
      throw e;
    }
  }

  private parseHeader(fd: number): void {
    const file = this.file;
    const size = fs.fstatSync(fd).size;
    if (size < 8) {
      throw weightsError(`${file} is truncated or not a safetensors file: ${size} bytes, need at least 8 for the header length`);
    }
    const lenBuf = Buffer.alloc(8);
    readFully(fd, lenBuf, 0, file, '(header length)');
    const headerLen64 = lenBuf.readBigUInt64LE(0);
    if (headerLen64 > BigInt(MAX_HEADER_BYTES)) {
      throw weightsError(`${file} is not a safetensors file: header length ${headerLen64} exceeds ${MAX_HEADER_BYTES} bytes`);
    }
    const headerLen = Number(headerLen64);
    if (8 + headerLen > size) {
      throw weightsError(
        `${file} is truncated: the header needs ${8 + headerLen} bytes but the file has only ${size} bytes`,
      );
    }
    const headerBuf = Buffer.alloc(headerLen);
    readFully(fd, headerBuf, 8, file, '(header)');
    let header: unknown;
    try {
      header = JSON.parse(headerBuf.toString('utf8'));
    } catch (e) {
      throw weightsError(`${file} is not a safetensors file: its header is not valid JSON (${(e as Error).message})`);
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) {
      throw weightsError(`${file} is not a safetensors file: its header is not a JSON object`);
    }

    const dataStart = 8 + headerLen;
    const problems: string[] = [];
    const truncated: { name: string; needed: number }[] = [];
    for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') continue;
      const r = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown } | null;
      const dtype = r?.dtype;
      const shape = r?.shape;
      const offs = r?.data_offsets;
      if (
        typeof dtype !== 'string' ||
        !Array.isArray(shape) ||
        !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0) ||
        !Array.isArray(offs) ||
        offs.length !== 2 ||
        !offs.every((o) => Number.isSafeInteger(o) && (o as number) >= 0) ||
        (offs[0] as number) > (offs[1] as number)
      ) {
        problems.push(`tensor "${name}" has a malformed header entry ${JSON.stringify(raw)}`);
        continue;
      }
      const dims = shape as number[];
      const [begin, end] = offs as [number, number];
      const numel = dims.reduce((a, b) => a * b, 1);
      const elemBytes = DTYPE_BYTES[dtype];
      if (elemBytes !== undefined && numel * elemBytes !== end - begin) {
        problems.push(
          `tensor "${name}" (${dtype} [${dims.join(', ')}]) needs ${numel * elemBytes} bytes but data_offsets span ${end - begin}`,
        );
        continue;
      }
      if (dataStart + end > size) truncated.push({ name, needed: dataStart + end });
      this.entries.set(name, {
        name,
        dtype,
        shape: dims,
        numel,
        position: dataStart + begin,
        byteLength: end - begin,
        shard: this,
      });
    }
    if (problems.length > 0) {
      throw weightsError(`${file} has an invalid header: ${problems.join('; ')}`);
    }
    if (truncated.length > 0) {
      truncated.sort((a, b) => a.needed - b.needed);
      const first = truncated[0];
      const expected = truncated[truncated.length - 1].needed;
      throw weightsError(
        `${file} is truncated (incomplete download?): expected at least ${expected} bytes but the file has ${size} bytes; ` +
          `tensor "${first.name}" ends at byte ${first.needed}` +
          (truncated.length > 1 ? ` (${truncated.length} tensors affected)` : ''),
      );
    }
  }

  /** The open descriptor; throws after close(). */
  get descriptor(): number {
    if (this.fd === null) throw new Error(`safetensors: ${this.file} is closed`);
    return this.fd;
  }

  close(): void {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }
}

/** Fills `target` from `position`, looping over short reads; a short file is a truncation error. */
function readFully(fd: number, target: Uint8Array, position: number, file: string, what: string): void {
  let off = 0;
  while (off < target.length) {
    const n = fs.readSync(fd, target, off, Math.min(target.length - off, READ_CHUNK_BYTES), position + off);
    if (n === 0) {
      throw weightsError(
        `${file} is truncated: reading ${what} needed bytes up to ${position + target.length} but the file ended at ${position + off}`,
      );
    }
    off += n;
  }
}

/** Reads an entry into a new float32 array (one destination copy, bounded scratch for 16-bit types). */
function readEntryFloat32(e: Entry): Float32Array {
  if (!(FLOAT_DTYPES as readonly string[]).includes(e.dtype)) {
    throw new ModelLoadError(
      'unsupported_model',
      `tensor "${e.name}" in ${e.shard.file} has dtype ${e.dtype}, which is not supported (supported: ${FLOAT_DTYPES.join(', ')})`,
    );
  }
  assertLittleEndianHost();
  const fd = e.shard.descriptor;
  const out = new Float32Array(e.numel); // (numel) in `shape` order
  if (e.dtype === 'F32') {
    readFully(fd, new Uint8Array(out.buffer), e.position, e.shard.file, `tensor "${e.name}"`);
    return out;
  }
  // 16-bit: stream through a scratch buffer and widen.
  const scratchElems = Math.min(e.numel, READ_CHUNK_BYTES / 2);
  const scratch = new Uint16Array(Math.max(1, scratchElems));
  const scratchBytes = new Uint8Array(scratch.buffer);
  const out32 = new Uint32Array(out.buffer);
  const table = e.dtype === 'F16' ? getF16Table() : null;
  for (let done = 0; done < e.numel; ) {
    const n = Math.min(scratchElems, e.numel - done);
    readFully(fd, scratchBytes.subarray(0, n * 2), e.position + done * 2, e.shard.file, `tensor "${e.name}"`);
    if (table !== null) {
      for (let i = 0; i < n; i++) out[done + i] = table[scratch[i]];
    } else {
      for (let i = 0; i < n; i++) out32[done + i] = scratch[i] << 16;
    }
    done += n;
  }
  return out;
}

/** Builds the public index over a name → entry map. */
function makeIndex(dir: string, shards: ShardFile[], entries: Map<string, Entry>): SafetensorsIndex {
  const get = (name: string): Entry => {
    const e = entries.get(name);
    if (e === undefined) throw weightsError(`tensor "${name}" not found in the checkpoint at ${dir}`);
    return e;
  };
  return {
    dir,
    files: shards.map((s) => s.file),
    names: () => [...entries.keys()],
    has: (name) => entries.has(name),
    info: (name) => {
      const e = get(name);
      return { dtype: e.dtype, shape: [...e.shape], file: e.shard.file };
    },
    readFloat32: (name) => readEntryFloat32(get(name)),
    close: () => shards.forEach((s) => s.close()),
  };
}

/** Opens one `.safetensors` file. */
export function openSafetensorsFile(file: string): SafetensorsIndex {
  const abs = path.resolve(file);
  const shard = new ShardFile(abs);
  return makeIndex(path.dirname(abs), [shard], shard.entries);
}

/**
 * Opens the weights of an HF model directory: `model.safetensors` when present, otherwise
 * `model.safetensors.index.json` and the shard files its `weight_map` names.
 *
 * @throws ModelLoadError `invalid_weights` for missing/malformed/truncated files
 */
export function openSafetensors(dir: string): SafetensorsIndex {
  const absDir = path.resolve(dir);
  const single = path.join(absDir, SAFETENSORS_FILE);
  if (fs.existsSync(single)) return openSafetensorsFile(single);
  const indexFile = path.join(absDir, SAFETENSORS_INDEX_FILE);
  if (!fs.existsSync(indexFile)) {
    throw weightsError(
      `no weights found in ${absDir}: expected ${SAFETENSORS_FILE} or ${SAFETENSORS_INDEX_FILE} (only safetensors checkpoints are supported)`,
    );
  }

  const index = readJsonFile(indexFile, 'invalid_weights') as { weight_map?: unknown } | null;
  const weightMap = index?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw weightsError(`${indexFile} has no \`weight_map\` object`);
  }
  // Validate every shard reference before opening anything.
  const problems: string[] = [];
  const byShard = new Map<string, string[]>(); // shard file name → tensor names
  for (const [name, shardName] of Object.entries(weightMap as Record<string, unknown>)) {
    if (
      typeof shardName !== 'string' ||
      shardName === '' ||
      path.isAbsolute(shardName) ||
      shardName.split(/[\\/]/).includes('..')
    ) {
      problems.push(`tensor "${name}" maps to an invalid shard file name ${JSON.stringify(shardName)}`);
      continue;
    }
    const list = byShard.get(shardName) ?? [];
    list.push(name);
    byShard.set(shardName, list);
  }
  for (const [shardName, names] of byShard) {
    if (!fs.existsSync(path.join(absDir, shardName))) {
      problems.push(`shard file ${shardName} (holding "${names[0]}" and ${names.length - 1} more) is missing`);
    }
  }
  if (problems.length > 0) throw weightsError(`${indexFile}: ${problems.join('; ')}`);

  const shards: ShardFile[] = [];
  const entries = new Map<string, Entry>();
  try {
    for (const [shardName, names] of byShard) {
      const shard = new ShardFile(path.join(absDir, shardName));
      shards.push(shard);
      const absent = names.filter((n) => !shard.entries.has(n));
      if (absent.length > 0) {
        throw weightsError(
          `${indexFile} says ${absent.map((n) => `"${n}"`).join(', ')} ${absent.length === 1 ? 'is' : 'are'} in ${shardName}, but that file does not contain ${absent.length === 1 ? 'it' : 'them'}`,
        );
      }
    }
    // Index order (weight_map) is the public order.
    for (const name of Object.keys(weightMap as Record<string, unknown>)) {
      const shardName = (weightMap as Record<string, string>)[name];
      const shard = shards.find((s) => s.file === path.join(absDir, shardName));
      entries.set(name, shard!.entries.get(name)!);
    }
  } catch (e) {
    shards.forEach((s) => s.close());
    throw e;
  }
  return makeIndex(absDir, shards, entries);
}

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------

/** A tensor to write: float32 data stored as `dtype`. */
export interface TensorToWrite {
  dtype: FloatDtype;
  shape: number[];
  data: Float32Array; // (prod(shape)) row-major
}

/** Encodes float32 data as the little-endian bytes of `dtype` (RNE for F16/BF16). */
export function encodeFloat32(data: Float32Array, dtype: FloatDtype): Uint8Array {
  assertLittleEndianHost();
  if (dtype === 'F32') return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint16Array(data.length);
  const conv = dtype === 'F16' ? float32ToF16 : float32ToBf16;
  for (let i = 0; i < data.length; i++) out[i] = conv(data[i]);
  return new Uint8Array(out.buffer);
}

/**
 * Writes a `.safetensors` file (tensors in the given order, header padded with spaces to a multiple
 * of 8 bytes as the reference implementation does).
 */
export function writeSafetensors(
  file: string,
  tensors: Record<string, TensorToWrite>,
  metadata: Record<string, string> = { format: 'pt' },
): void {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (!(FLOAT_DTYPES as readonly string[]).includes(t.dtype)) {
      throw new Error(`writeSafetensors: tensor "${name}" has unsupported dtype ${String(t.dtype)}`);
    }
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (numel !== t.data.length) {
      throw new Error(`writeSafetensors: tensor "${name}" shape [${t.shape.join(', ')}] needs ${numel} values, got ${t.data.length}`);
    }
    const bytes = numel * DTYPE_BYTES[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (jsonBytes % 8)) % 8);
  const headerBuf = Buffer.from(json, 'utf8');
  const lenBuf = Buffer.alloc(8);
  lenBuf.writeBigUInt64LE(BigInt(headerBuf.length));

  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, lenBuf);
    fs.writeSync(fd, headerBuf);
    for (const t of Object.values(tensors)) {
      const bytes = encodeFloat32(t.data, t.dtype);
      for (let off = 0; off < bytes.length; ) {
        off += fs.writeSync(fd, bytes, off, Math.min(bytes.length - off, READ_CHUNK_BYTES));
      }
    }
  } finally {
    fs.closeSync(fd);
  }
}
