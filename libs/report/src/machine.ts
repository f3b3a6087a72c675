/** A description of the machine and software a benchmark ran on. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface MachineInfo {
  cpuModel: string;
  logicalCpus: number;
  /** SIMD feature flags of interest found in /proc/cpuinfo. */
  simd: string[];
  memGiB: number;
  node: string;
  ortVersion: string;
  platform: string;
}

function ortVersion(): string {
  try {
    const pkg = path.join(path.dirname(require.resolve('onnxruntime-node/package.json')), 'package.json');
    return (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function machineInfo(): MachineInfo {
  let flags: string[] = [];
  try {
    const line = fs
      .readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('flags'));
    if (line) flags = line.split(':')[1].trim().split(/\s+/);
  } catch {
    // not Linux
  }
  const wanted = ['sse4_2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni', 'avx512_bf16', 'amx_tile'];
  return {
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    logicalCpus: os.cpus().length,
    simd: wanted.filter((f) => flags.includes(f)),
    memGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    ortVersion: ortVersion(),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
  };
}
