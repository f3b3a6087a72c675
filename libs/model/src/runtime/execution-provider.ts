/**
 * Which onnxruntime execution provider runs a process's graphs.
 *
 * | variable                 | meaning                                                          | default |
 * | ------------------------ | ---------------------------------------------------------------- | ------- |
 * | STARQ_EXECUTION_PROVIDER | `cpu`, `cuda`, or an ordered list tried in turn (`cuda,cpu`)      | cpu     |
 * | STARQ_CUDA_DEVICE_ID     | CUDA device ordinal used by the `cuda` provider                  | 0       |
 *
 * `cuda` alone is a promise: without onnxruntime-node's CUDA provider library (or one of the CUDA
 * libraries it links against) the process refuses to start with {@link CudaProviderUnavailableError},
 * naming the library and the fix. A list falls back to the next provider with one warning.
 */
import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { StarqError } from '@starq/protocol/errors';
import { GraphBuilder } from '../onnx/graph-builder';

export type ExecutionProviderName = 'cpu' | 'cuda';

export const EXECUTION_PROVIDERS: readonly ExecutionProviderName[] = ['cpu', 'cuda'];

/** What the configuration asks for. */
export interface ExecutionProviderRequest {
  /** Providers in the order they are tried; the first that works is used. */
  order: ExecutionProviderName[];
  /** CUDA device ordinal. */
  cudaDeviceId: number;
}

/** What a process runs on, once resolved. */
export interface ExecutionProviderChoice {
  provider: ExecutionProviderName;
  /** CUDA device ordinal (only meaningful for `cuda`). */
  cudaDeviceId: number;
}

/** The files onnxruntime-node needs for its CUDA provider (linux/x64; fetched by its installer). */
export const CUDA_PROVIDER_LIBRARIES = ['libonnxruntime_providers_shared.so', 'libonnxruntime_providers_cuda.so'] as const;

/** Directory of onnxruntime-node's native binaries for this platform. */
export function ortBinaryDir(): string {
  const pkg = path.dirname(require.resolve('onnxruntime-node/package.json'));
  return path.join(pkg, 'bin', 'napi-v6', process.platform, process.arch);
}

const FIX =
  'use the CUDA image (docker build -f deploy/docker/Dockerfile --target cuda), or reinstall onnxruntime-node with its CUDA provider ' +
  '(ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci, on linux/x64 with CUDA 12 and cuDNN 9 installed), ' +
  'or set STARQ_EXECUTION_PROVIDER=cuda,cpu to fall back to the CPU';

/** `cuda` was required and cannot be used here. */
export class CudaProviderUnavailableError extends StarqError {
  constructor(
    readonly library: string,
    reason: string,
  ) {
    super('cuda_unavailable', `STARQ_EXECUTION_PROVIDER asks for cuda but ${library} ${reason}: ${FIX}`, { param: 'STARQ_EXECUTION_PROVIDER', status: 500 });
  }
}

/**
 * Reads STARQ_EXECUTION_PROVIDER and STARQ_CUDA_DEVICE_ID; problems are appended to `problems`
 * (the caller reports every bad variable together).
 */
export function parseExecutionProvider(env: NodeJS.ProcessEnv, problems: string[]): ExecutionProviderRequest {
  const raw = (env.STARQ_EXECUTION_PROVIDER ?? '').trim();
  const order: ExecutionProviderName[] = [];
  for (const name of (raw || 'cpu').split(',').map((s) => s.trim().toLowerCase())) {
    if (!(EXECUTION_PROVIDERS as readonly string[]).includes(name)) {
      problems.push(`STARQ_EXECUTION_PROVIDER must be ${EXECUTION_PROVIDERS.join(', ')} or an ordered list of them such as cuda,cpu (got ${JSON.stringify(env.STARQ_EXECUTION_PROVIDER)})`);
      return { order: ['cpu'], cudaDeviceId: 0 };
    }
    if (order.includes(name as ExecutionProviderName)) {
      problems.push(`STARQ_EXECUTION_PROVIDER names ${name} twice (got ${JSON.stringify(env.STARQ_EXECUTION_PROVIDER)})`);
      return { order: ['cpu'], cudaDeviceId: 0 };
    }
    order.push(name as ExecutionProviderName);
  }
  const dev = (env.STARQ_CUDA_DEVICE_ID ?? '').trim();
  let cudaDeviceId = 0;
  if (dev !== '') {
    if (!/^\d+$/.test(dev) || Number(dev) > 255) problems.push(`STARQ_CUDA_DEVICE_ID must be a device ordinal in [0, 255] (got ${JSON.stringify(env.STARQ_CUDA_DEVICE_ID)})`);
    else cudaDeviceId = Number(dev);
  }
  return { order, cudaDeviceId };
}

/** A one-node graph (Identity on float32 (1)): enough for ORT to bring up a provider. */
function probeGraph(): Uint8Array {
  const g = new GraphBuilder('provider_probe');
  const x = g.input('x', 'float32', [1]);
  g.output('y', x, 'float32', [1]);
  return g.toBytes();
}

/**
 * Checks that the CUDA provider can be brought up: its library files exist in `dir`, and an ORT
 * session on device `deviceId` can be created (which loads every CUDA library it links against).
 * @throws CudaProviderUnavailableError naming the library that is missing or cannot be loaded.
 */
export async function checkCudaProvider(deviceId: number, dir: string = ortBinaryDir()): Promise<void> {
  if (`${process.platform}/${process.arch}` !== 'linux/x64') {
    throw new CudaProviderUnavailableError(CUDA_PROVIDER_LIBRARIES[1], `is only shipped for linux/x64 by onnxruntime-node (this is ${process.platform}/${process.arch})`);
  }
  for (const lib of CUDA_PROVIDER_LIBRARIES) {
    if (!fs.existsSync(path.join(dir, lib))) throw new CudaProviderUnavailableError(lib, `is not installed in ${dir}`);
  }
  try {
    const s = await ort.InferenceSession.create(probeGraph(), { executionProviders: [{ name: 'cuda', deviceId }] });
    await s.release();
  } catch (e) {
    const msg = (e as Error).message;
    const lib = /(lib[\w.+-]+\.so(?:\.\d+)*)/.exec(msg)?.[1] ?? CUDA_PROVIDER_LIBRARIES[1];
    throw new CudaProviderUnavailableError(lib, `could not be loaded on CUDA device ${deviceId} (${msg.split('\n')[0]})`);
  }
}

/**
 * The first provider of `req.order` that works. A provider skipped on the way produces exactly one
 * warning (through `warn`); when none works the last one's error is thrown.
 */
export async function resolveExecutionProvider(
  req: ExecutionProviderRequest,
  opts: { warn?: (message: string) => void; check?: (deviceId: number) => Promise<void> } = {},
): Promise<ExecutionProviderChoice> {
  const check = opts.check ?? ((d: number) => checkCudaProvider(d));
  let last: Error | null = null;
  for (const [i, provider] of req.order.entries()) {
    if (provider === 'cpu') return { provider, cudaDeviceId: req.cudaDeviceId };
    try {
      await check(req.cudaDeviceId);
      return { provider, cudaDeviceId: req.cudaDeviceId };
    } catch (e) {
      last = e as Error;
      const next = req.order[i + 1];
      if (next) (opts.warn ?? ((m: string) => process.stderr.write(`warning: ${m}\n`)))(`${(e as Error).message.replace(/: use the CUDA image.*$/, '')}; falling back to ${next} (STARQ_EXECUTION_PROVIDER=${req.order.join(',')})`);
    }
  }
  throw last ?? new StarqError('invalid_config', 'STARQ_EXECUTION_PROVIDER lists no provider', { param: 'STARQ_EXECUTION_PROVIDER' });
}

/** ORT session options for a resolved provider (`executionProviders`). */
export function executionProvidersFor(choice: ExecutionProviderChoice): ort.InferenceSession.SessionOptions['executionProviders'] {
  return choice.provider === 'cuda' ? [{ name: 'cuda', deviceId: choice.cudaDeviceId }, 'cpu'] : ['cpu'];
}
