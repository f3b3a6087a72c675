/**
 * Starting a gateway process (used by `starq cluster up`): `node bin/starq-gateway` with its
 * STARQ_* environment; resolves with its URL once it prints `listening http://HOST:PORT`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { StarqError } from '@starq/protocol';

export const GATEWAY_BIN = path.resolve(__dirname, '../../../../bin/starq-gateway');

export interface GatewayProcessOptions {
  redisUrl: string;
  prefix: string;
  modelDir: string;
  /** 0 = any free port (the URL tells which). */
  port: number;
  /** @defaultValue 127.0.0.1 */
  host?: string;
  /** API keys; when absent the process inherits STARQ_API_KEYS from the environment. */
  apiKeys?: string[];
  gatewayId?: string;
  /** Where its output goes, one prefixed line at a time. */
  log: (line: string) => void;
  /** @defaultValue 120000 */
  startTimeoutMs?: number;
}

export function spawnGateway(o: GatewayProcessOptions): { proc: ChildProcess; url: Promise<string> } {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    STARQ_REDIS_URL: o.redisUrl,
    STARQ_PREFIX: o.prefix,
    STARQ_MODEL_DIR: o.modelDir,
    STARQ_GATEWAY_PORT: String(o.port),
    STARQ_GATEWAY_HOST: o.host ?? '127.0.0.1',
    STARQ_EXIT_WITH_PARENT: '1',
    ...(o.apiKeys && o.apiKeys.length > 0 ? { STARQ_API_KEYS: o.apiKeys.join(',') } : {}),
    ...(o.gatewayId ? { STARQ_GATEWAY_ID: o.gatewayId } : {}),
  };
  const proc = spawn(process.execPath, [GATEWAY_BIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const url = new Promise<string>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new StarqError('startup_timeout', `the gateway did not start listening within ${(o.startTimeoutMs ?? 120000) / 1000} s`, { status: 500 })), o.startTimeoutMs ?? 120000);
    const lines = (b: Buffer, stream: 'out' | 'err') => {
      const text = b.toString();
      for (const l of text.split('\n').filter((x) => x.length > 0)) o.log(`[gateway] ${l}\n`);
      if (stream === 'out') {
        buf += text;
        const m = /listening (http:\/\/\S+)/.exec(buf);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      }
    };
    proc.stdout!.on('data', (b: Buffer) => lines(b, 'out'));
    proc.stderr!.on('data', (b: Buffer) => lines(b, 'err'));
    proc.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new StarqError('gateway_failed', `the gateway exited during start-up (${sig ?? `exit ${code}`}); see its output above`, { status: code === 2 ? 400 : 500 }));
    });
    proc.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
  url.catch(() => undefined); // the caller awaits it; avoid an unhandled rejection when it does not
  return { proc, url };
}
