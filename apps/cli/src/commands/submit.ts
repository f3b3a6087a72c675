/**
 * `starq submit` — a client of the HTTP gateway's native jobs API: POST /v1/jobs, then follow the
 * job's SSE events. With --stream: a progress bar on stderr during phase 1 and the generated text
 * on stdout as it arrives. SIGINT / SIGTERM cancel the job (DELETE /v1/jobs/:id) and exit 130 / 143.
 * Errors from the gateway keep their code: 4xx → exit 2, 5xx / unreachable → exit 1.
 */
import type { Command } from 'commander';
import { InvalidInputError, StarqError } from '@starq/protocol/errors';
import { jsonData, sseEvents } from '@starq/sse';
import { floatFlag, intFlag } from '../options';
import { addInputFlags, readInputFlags, type InputFlags } from '../input-flags';
import { envHelp } from '../cluster-flags';
import { interruptSignal } from '../interrupt';
import { Progress } from '../progress';

interface SubmitFlags extends InputFlags {
  url: string;
  apiKey?: string;
  model?: string;
  mode?: string;
  blockSize?: string;
  anchorSize?: string;
  hosts?: string;
  maxNewTokens?: string;
  temperature?: string;
  topP?: string;
  topK?: string;
  seed?: string;
  ignoreEos?: boolean;
  cache: boolean;
  stream?: boolean;
  json?: boolean;
}

export function registerSubmit(program: Command): void {
  const cmd = program
    .command('submit')
    .description('submit a job to a starq HTTP gateway and follow it')
    .requiredOption('--url <url>', 'gateway URL, e.g. http://127.0.0.1:8080')
    .option('--api-key <key>', 'API key (default: $STARQ_API_KEY; prefer the variable: flags show in `ps`)')
    .option('--model <name>', 'model name (default: the one the gateway serves)');
  addInputFlags(cmd)
    .option('--mode <mode>', 'star | global | ring')
    .option('--block-size <n>', 'context block size')
    .option('--anchor-size <n>', 'anchor size')
    .option('--hosts <n>', 'number of hosts')
    .option('--max-new-tokens <n>', 'tokens to generate')
    .option('--temperature <t>', 'sampling temperature (0 = greedy)')
    .option('--top-p <p>', 'nucleus sampling mass')
    .option('--top-k <k>', 'top-k sampling (0 = off)')
    .option('--seed <s>', 'sampling seed')
    .option('--ignore-eos', 'do not stop at end-of-sequence tokens')
    .option('--no-cache', 'keep the blocks this job encodes private to it and release them when it ends (cached blocks are still reused)')
    .option('--stream', 'show phase-1 progress and stream tokens as they are generated')
    .option('--json', 'print exactly one JSON object (the result, as `starq generate --json`)')
    .action(async (f: SubmitFlags) => {
      await submitCommand(f);
    });
  envHelp(cmd, [['STARQ_API_KEY', 'API key when --api-key is not given']]);
}

function gatewayError(status: number, body: unknown, what: string): StarqError {
  const e = (body as { error?: { code?: string; message?: string; param?: string | null } } | null)?.error;
  if (e && typeof e.code === 'string') return new StarqError(e.code, e.message ?? what, { param: e.param ?? null, status });
  return new StarqError('gateway_error', `${what}: HTTP ${status}`, { status: status >= 400 ? status : 500 });
}

async function request(url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (e) {
    throw new StarqError('gateway_unreachable', `cannot reach the gateway at ${new URL(url).origin}: ${(e as Error & { cause?: Error }).cause?.message ?? (e as Error).message}`, { param: 'url', status: 503 });
  }
}

async function submitCommand(f: SubmitFlags): Promise<void> {
  let base: URL;
  try {
    base = new URL(f.url);
  } catch {
    throw new InvalidInputError('invalid_flag', `--url must be a URL such as http://127.0.0.1:8080, got "${f.url}"`, 'url');
  }
  const root = base.toString().replace(/\/+$/, '');
  const key = f.apiKey ?? process.env.STARQ_API_KEY;
  const headers: Record<string, string> = { 'Content-Type': 'application/json', ...(key ? { Authorization: `Bearer ${key}` } : {}) };
  const body: Record<string, unknown> = {
    model: f.model,
    ...readInputFlags(f),
    mode: f.mode,
    blockSize: intFlag(f.blockSize, 'block-size', 1),
    anchorSize: intFlag(f.anchorSize, 'anchor-size', 0),
    hosts: intFlag(f.hosts, 'hosts', 1),
    maxNewTokens: intFlag(f.maxNewTokens, 'max-new-tokens', 1),
    temperature: floatFlag(f.temperature, 'temperature'),
    topP: floatFlag(f.topP, 'top-p'),
    topK: intFlag(f.topK, 'top-k'),
    seed: intFlag(f.seed, 'seed', -Number.MAX_SAFE_INTEGER),
    ignoreEos: f.ignoreEos ? true : undefined,
    cache: f.cache === false ? false : undefined,
  };
  const res = await request(`${root}/v1/jobs`, { method: 'POST', headers, body: JSON.stringify(body) });
  const created = (await res.json().catch(() => null)) as { id?: string } | null;
  if (res.status !== 202 || !created?.id) throw gatewayError(res.status, created, 'submitting the job failed');
  const id = created.id;
  if (!f.json) process.stderr.write(`job ${id} submitted\n`);

  // Interrupted: cancel the job on the gateway, stop following it; main() exits 130 / 143.
  const signal = interruptSignal();
  let cancelling: Promise<unknown> | null = null;
  const onInterrupt = () => {
    cancelling = request(`${root}/v1/jobs/${id}`, { method: 'DELETE', headers }).catch(() => undefined);
  };
  if (signal.aborted) onInterrupt();
  else signal.addEventListener('abort', onInterrupt, { once: true });
  const progress = new Progress(process.stderr, 'phase 1');
  let streamed = '';
  try {
    const events = await request(`${root}/v1/jobs/${id}/events`, { headers: { ...headers, Accept: 'text/event-stream' }, signal });
    if (events.status !== 200 || !events.body) throw gatewayError(events.status, await events.json().catch(() => null), 'following the job failed');
    let final: { name: string; data: any } | null = null;
    for await (const raw of sseEvents(events.body as unknown as AsyncIterable<Uint8Array>)) {
      const ev = { name: raw.name, data: jsonData(raw) as any };
      if (ev.name === 'job' && f.stream && !f.json) progress.update(ev.data.progress.blocks.done, ev.data.progress.blocks.total);
      else if (ev.name === 'progress' && f.stream && !f.json) progress.update(ev.data.blocks.done, ev.data.blocks.total);
      else if (ev.name === 'token') {
        progress.done();
        if (f.stream && !f.json) {
          streamed += ev.data.text;
          process.stdout.write(ev.data.text);
        }
      } else if (ev.name === 'result' || ev.name === 'error') {
        final = ev;
        break;
      }
    }
    progress.done();
    if (!final) throw new StarqError('stream_ended', `the event stream of job ${id} ended without a result`, { status: 502 });
    if (final.name === 'error') {
      const e = final.data.error ?? { code: 'internal_error', message: `job ${id} failed and the gateway sent no error (a bug: please report it)`, param: null };
      throw new StarqError(e.code, e.message, { param: e.param ?? null, status: e.code === 'cancelled' ? 409 : 500 });
    }
    const result = final.data.result;
    if (f.json) {
      process.stdout.write(JSON.stringify(result) + '\n');
      return;
    }
    const text: string = result.text ?? result.generatedIds.join(' '); // null: the model has no tokenizer
    if (text.startsWith(streamed)) process.stdout.write(text.slice(streamed.length));
    process.stdout.write('\n');
    const t = result.timings;
    process.stderr.write(
      `[${result.mode}] context ${result.contextTokens} + query ${result.queryTokens} tokens, ${result.generatedIds.length} generated (${result.finishReason}); ` +
        `phase 1 ${t.phase1Ms.toFixed(1)} ms, first token ${t.firstTokenMs.toFixed(1)} ms, ${t.decodeTokensPerSec.toFixed(1)} tok/s\n`,
    );
  } catch (e) {
    if (signal.aborted) {
      progress.done();
      await cancelling;
      throw signal.reason as Error;
    }
    throw e;
  } finally {
    signal.removeEventListener('abort', onInterrupt);
  }
}
