/**
 * deploy/docker/Dockerfile cannot be built here (no container engine): these checks read it and
 * hold it to the rules of the deployment (docs/DEPLOY.md): cpu and cuda targets, production
 * dependencies only, no weights, non-root, tini as PID 1, CUDA provider libraries checked with ldd.
 */
import fs from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { envAssignments, parseDockerfile, stageChain, type ParsedDockerfile, type Stage } from '../helpers/dockerfile';

const ROOT = path.resolve(__dirname, '../..');
const df: ParsedDockerfile = parseDockerfile(fs.readFileSync(path.join(ROOT, 'deploy/docker/Dockerfile'), 'utf8'));
const ignore = fs
  .readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const stage = (name: string): Stage => {
  const s = df.stages.find((x) => x.name === name);
  if (!s) throw new Error(`Dockerfile has no stage ${name}`);
  return s;
};
const last = (s: Stage, op: string) => [...s.instructions].reverse().find((i) => i.op === op);
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };

describe('deploy/docker/Dockerfile', () => {
  it.each(['cpu', 'cuda'])('has a %s target whose every COPY --from names an earlier stage', (target) => {
    const chain = stageChain(df, target);
    expect(chain[chain.length - 1].name).toBe(target);
    const names = df.stages.map((s) => s.name);
    for (const s of chain) {
      for (const ins of s.instructions.filter((i) => i.op === 'COPY' && /--from=/.test(i.args))) {
        const from = /--from=(\S+)/.exec(ins.args)![1];
        if (names.includes(from)) expect(names.indexOf(from)).toBeLessThan(names.indexOf(s.name));
        else expect(from).toMatch(/^[a-z0-9./-]+(:[\w.-]+)?$/); // an image reference
      }
    }
  });

  it.each(['cpu', 'cuda'])('%s runs as a numeric non-root user with tini as PID 1 and a role command', (target) => {
    const s = stage(target);
    const user = last(s, 'USER');
    expect(user).toBeDefined();
    const [uid, gid] = user!.args.split(':').map(Number);
    expect(Number.isInteger(uid) && uid > 0).toBe(true); // numeric so runAsNonRoot can verify it
    expect(Number.isInteger(gid) && gid > 0).toBe(true);
    expect(s.instructions.indexOf(user!)).toBeGreaterThan(s.instructions.findIndex((i) => i.op === 'RUN')); // nothing runs as root after USER
    const entry = JSON.parse(last(s, 'ENTRYPOINT')!.args) as string[];
    expect(entry[0]).toMatch(/\/tini$/);
    expect(entry[entry.length - 1]).toBe('--');
    expect(s.instructions.some((i) => i.op === 'RUN' && /install[^&]*\btini\b/.test(i.args))).toBe(true);
    const cmd = JSON.parse(last(s, 'CMD')!.args) as string[];
    expect(cmd[0]).toBe('node');
    expect(fs.existsSync(path.join(ROOT, cmd[1]))).toBe(true);
  });

  it('installs production dependencies only, from the lockfile', () => {
    for (const name of ['deps-cpu', 'deps-cuda']) {
      const runs = stage(name).instructions.filter((i) => i.op === 'RUN' && /\bnpm\b/.test(i.args));
      expect(runs.length).toBeGreaterThan(0);
      for (const r of runs) expect(r.args).toMatch(/npm ci --omit=dev/);
    }
    for (const target of ['cpu', 'cuda']) {
      const copies = stage(target).instructions.filter((i) => i.op === 'COPY');
      expect(copies.some((c) => /--from=deps-/.test(c.args) && /node_modules/.test(c.args))).toBe(true);
      expect(stage(target).instructions.some((i) => i.op === 'RUN' && /\bnpm (ci|install)\b/.test(i.args))).toBe(false);
    }
  });

  it('every package the shipped sources import is a production dependency', () => {
    const files: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.(ts|js)$/.test(e.name) && !/\.(spec|e2e)\.ts$/.test(e.name)) files.push(p);
      }
    };
    for (const d of ['apps', 'libs', 'bin']) walk(path.join(ROOT, d));
    for (const f of fs.readdirSync(path.join(ROOT, 'bin'))) files.push(path.join(ROOT, 'bin', f));
    const missing = new Set<string>();
    const seen = new Set<string>();
    for (const f of files) {
      const src = fs.readFileSync(f, 'utf8');
      for (const m of src.matchAll(/(?:^|\s)(?:import|export)\s[^'"]*?from\s+'([^'.][^']*)'|require\('([^'.][^']*)'\)|import\('([^'.][^']*)'\)/gm)) {
        const spec = m[1] ?? m[2] ?? m[3];
        if (spec.startsWith('@starq/') || spec.startsWith('node:') || builtinModules.includes(spec.split('/')[0])) continue;
        const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
        seen.add(name);
        if (!pkg.dependencies[name]) missing.add(`${name} (${path.relative(ROOT, f)})`);
      }
    }
    expect([...seen]).toEqual(expect.arrayContaining(['bullmq', 'onnxruntime-node', 'ioredis', 'tsx', '@nestjs/core']));
    expect([...missing]).toEqual([]);
  });

  it('bakes no weights into the image', () => {
    for (const s of df.stages) {
      for (const ins of s.instructions.filter((i) => i.op === 'COPY' || i.op === 'ADD')) {
        expect(ins.op).toBe('COPY'); // ADD can fetch URLs and unpack archives
        expect(ins.args).not.toMatch(/model|shared|safetensors|\.onnx|\.gguf|weights/i);
        expect(ins.args).not.toMatch(/(^|\s)\.\s+\.?\/?(app)?\s*$/); // never the whole context
      }
    }
    for (const pattern of ['**/*.safetensors', '**/*.onnx', '**/*.gguf', 'models', 'shared', '**/node_modules', '.git', 'test', 'bench']) expect(ignore).toContain(pattern);
  });

  it('the cpu target never fetches the CUDA provider; the cuda target fails its build when ldd cannot resolve it', () => {
    const cpuEnv = Object.assign({}, ...stageChain(df, 'cpu').flatMap((s) => s.instructions.filter((i) => i.op === 'ENV').map((i) => envAssignments(i.args))));
    expect(cpuEnv.ONNXRUNTIME_NODE_INSTALL).toBe('skip');
    expect(cpuEnv.STARQ_EXECUTION_PROVIDER).toBe('cpu');
    const depsCuda = Object.assign({}, ...stage('deps-cuda').instructions.filter((i) => i.op === 'ENV').map((i) => envAssignments(i.args)));
    expect(depsCuda.ONNXRUNTIME_NODE_INSTALL).toMatch(/^cuda\d+$/);
    const cuda = stage('cuda');
    const base = cuda.from.replace(/^\$\{(\w+)\}$/, (_, k: string) => df.globalArgs[k] ?? '');
    expect(base).toMatch(/^nvidia\/cuda:[\d.]+-cudnn-runtime-/);
    const check = cuda.instructions.find((i) => i.op === 'RUN' && /\bldd\b/.test(i.args));
    expect(check).toBeDefined();
    expect(check!.args).toContain('libonnxruntime_providers_cuda.so');
    expect(check!.args).toMatch(/not found'?"?\s*;\s*then[^;]*;\s*exit 1/);
    expect(check!.args).toMatch(/^set -eu/);
    const cudaEnv = Object.assign({}, ...cuda.instructions.filter((i) => i.op === 'ENV').map((i) => envAssignments(i.args)));
    expect(cudaEnv.STARQ_EXECUTION_PROVIDER).toBe('cuda');
  });

  it('.dockerignore keeps the sources the role commands need', () => {
    for (const needed of ['bin', 'apps', 'libs', 'package.json', 'package-lock.json', 'tsconfig.json']) expect(ignore).not.toContain(needed);
  });
});
