import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  checkCudaProvider,
  CUDA_PROVIDER_LIBRARIES,
  CudaProviderUnavailableError,
  executionProvidersFor,
  ortBinaryDir,
  parseExecutionProvider,
  resolveExecutionProvider,
} from './execution-provider';
import { sessionOptions } from './session-options';

const parse = (env: NodeJS.ProcessEnv) => {
  const problems: string[] = [];
  return { req: parseExecutionProvider(env, problems), problems };
};
/** True when this machine has onnxruntime-node's CUDA provider files (a GPU build machine). */
const cudaInstalled = CUDA_PROVIDER_LIBRARIES.every((l) => fs.existsSync(path.join(ortBinaryDir(), l)));

describe('STARQ_EXECUTION_PROVIDER', () => {
  it('defaults to cpu on device 0 and reads ordered lists and the device id', () => {
    expect(parse({})).toEqual({ req: { order: ['cpu'], cudaDeviceId: 0 }, problems: [] });
    expect(parse({ STARQ_EXECUTION_PROVIDER: ' CUDA , cpu ', STARQ_CUDA_DEVICE_ID: '3' })).toEqual({ req: { order: ['cuda', 'cpu'], cudaDeviceId: 3 }, problems: [] });
  });

  it.each([
    [{ STARQ_EXECUTION_PROVIDER: 'tpu' }, /STARQ_EXECUTION_PROVIDER must be cpu, cuda or an ordered list/],
    [{ STARQ_EXECUTION_PROVIDER: 'cuda,cuda' }, /names cuda twice/],
    [{ STARQ_EXECUTION_PROVIDER: 'cuda,' }, /must be cpu, cuda/],
    [{ STARQ_CUDA_DEVICE_ID: '-1' }, /STARQ_CUDA_DEVICE_ID must be a device ordinal/],
    [{ STARQ_CUDA_DEVICE_ID: 'gpu0' }, /STARQ_CUDA_DEVICE_ID must be a device ordinal/],
  ])('reports %j', (env, re) => {
    const { problems } = parse(env);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(re);
  });

  it('cpu never probes CUDA', async () => {
    const check = jest.fn(async () => undefined);
    await expect(resolveExecutionProvider({ order: ['cpu', 'cuda'], cudaDeviceId: 0 }, { check })).resolves.toEqual({ provider: 'cpu', cudaDeviceId: 0 });
    expect(check).not.toHaveBeenCalled();
    expect(executionProvidersFor({ provider: 'cpu', cudaDeviceId: 0 })).toEqual(['cpu']);
    expect(executionProvidersFor({ provider: 'cuda', cudaDeviceId: 2 })).toEqual([{ name: 'cuda', deviceId: 2 }, 'cpu']);
  });

  it('the one source of session options carries the provider to every engine session', () => {
    expect(sessionOptions().executionProviders).toBeUndefined(); // ORT's default: CPU
    expect(sessionOptions({ executionProvider: { provider: 'cpu', cudaDeviceId: 0 } }).executionProviders).toBeUndefined();
    expect(sessionOptions({ threads: 2, executionProvider: { provider: 'cuda', cudaDeviceId: 1 } })).toMatchObject({ intraOpNumThreads: 2, executionProviders: [{ name: 'cuda', deviceId: 1 }, 'cpu'] });
  });

  it('cuda without the provider library files: a startup error naming the library and the fix', async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'starq-ep-'));
    try {
      const e = await checkCudaProvider(0, empty).then(
        () => null,
        (x: unknown) => x,
      );
      expect(e).toBeInstanceOf(CudaProviderUnavailableError);
      const err = e as CudaProviderUnavailableError;
      expect(err.code).toBe('cuda_unavailable');
      expect(err.param).toBe('STARQ_EXECUTION_PROVIDER');
      expect(err.library).toBe('libonnxruntime_providers_shared.so');
      expect(err.message).toContain(`libonnxruntime_providers_shared.so is not installed in ${empty}`);
      expect(err.message).toMatch(/--target cuda.*ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci.*STARQ_EXECUTION_PROVIDER=cuda,cpu/);
    } finally {
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });

  it('cuda when the files exist but onnxruntime cannot load them: the error names the library', async () => {
    if (cudaInstalled) return; // on a machine with a working CUDA provider there is nothing to fail
    const fake = fs.mkdtempSync(path.join(os.tmpdir(), 'starq-ep-'));
    try {
      for (const l of CUDA_PROVIDER_LIBRARIES) fs.writeFileSync(path.join(fake, l), '');
      await expect(checkCudaProvider(0, fake)).rejects.toThrow(/libonnxruntime_providers_\w+\.so could not be loaded on CUDA device 0/);
    } finally {
      fs.rmSync(fake, { recursive: true, force: true });
    }
  });

  (cudaInstalled ? it.skip : it)('this machine (no CUDA provider installed; skipped where one is): cuda fails, cuda,cpu runs on cpu with exactly one warning', async () => {
    await expect(resolveExecutionProvider({ order: ['cuda'], cudaDeviceId: 0 }, { warn: () => undefined })).rejects.toBeInstanceOf(CudaProviderUnavailableError);
    const warnings: string[] = [];
    const choice = await resolveExecutionProvider({ order: ['cuda', 'cpu'], cudaDeviceId: 0 }, { warn: (m) => warnings.push(m) });
    expect(choice).toEqual({ provider: 'cpu', cudaDeviceId: 0 });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/asks for cuda but libonnxruntime_providers_\w+\.so .*; falling back to cpu \(STARQ_EXECUTION_PROVIDER=cuda,cpu\)/);
  });
});
