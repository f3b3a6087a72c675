/**
 * OpenAI-compatible routes: `GET /v1/models`, `POST /v1/completions`, `POST /v1/chat/completions`
 * (streaming and not), shaped so the official `openai` client works unchanged.
 *
 * Mapping onto Star Attention:
 * - completions: `prompt` text (or token ids) is the context and, without the `query` extension
 *   field, its last token is the query; with `query`, prompt = context and query = query.
 * - chat: see prompting.ts `chatToIds` (everything before the last user message is the context).
 * - `star: {mode, block_size, anchor_size, hosts, cache}` chooses the plan.
 * - `stop` strings are matched on the decoded text; reaching one ends the response and cancels
 *   the rest of the generation. A client that disconnects cancels its job too.
 */
import { randomInt, randomUUID } from 'node:crypto';
import type { RequestResult } from '@starq/cluster';
import { InvalidInputError, StarqError } from '@starq/protocol';
import type { Principal } from './auth';
import type { Gateway } from './gateway';
import { HttpError, readBody, sendJson, SseWriter, type Req, type Res } from './http';
import { statusOfJobError, type JobInput, type JobKind } from './jobs';
import { CHAT_PARAMS, COMPLETION_PARAMS, withParams } from './params';
import { StopMatcher } from './prompting';
import type { ChatBody, CompletionBody } from './schemas';

type Common = Pick<CompletionBody, 'model' | 'max_tokens' | 'temperature' | 'top_p' | 'top_k' | 'seed' | 'stop' | 'ignore_eos' | 'star' | 'stream' | 'stream_options'>;

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export class OpenAiApi {
  constructor(private readonly gw: Gateway) {}

  private modelObject() {
    return { id: this.gw.modelId, object: 'model', created: 0, owned_by: 'starq', max_model_len: this.gw.maxPositions };
  }

  models(req: Req, res: Res): void {
    this.gw.auth.authenticate(req, 'user');
    sendJson(res, 200, { object: 'list', data: [this.modelObject()] });
  }

  model(req: Req, res: Res, id: string): void {
    this.gw.auth.authenticate(req, 'user');
    if (id !== this.gw.modelId) throw new HttpError(404, 'model_not_found', `model ${JSON.stringify(id)} is not served here (served: ${this.gw.modelId})`, 'model');
    sendJson(res, 200, this.modelObject());
  }

  async completions(req: Req, res: Res): Promise<void> {
    const who = this.gw.auth.authenticate(req, 'user');
    const got = await this.gw.intake.run('completion', await readBody(req, this.gw.cfg.maxBodyBytes));
    const b = got.body as Common;
    this.checkModel(b.model);
    const ids = { contextIds: Array.from(got.contextIds), queryIds: Array.from(got.queryIds) };
    await this.run('completion', who, b, ids, b.max_tokens ?? 16, req, res);
  }

  async chat(req: Req, res: Res): Promise<void> {
    const who = this.gw.auth.authenticate(req, 'user');
    const got = await this.gw.intake.run('chat', await readBody(req, this.gw.cfg.maxBodyBytes));
    const b = got.body as Common & Pick<ChatBody, 'max_completion_tokens'>;
    this.checkModel(b.model);
    const ids = { contextIds: Array.from(got.contextIds), queryIds: Array.from(got.queryIds) };
    const room = this.gw.maxPositions - ids.contextIds.length - ids.queryIds.length;
    await this.run('chat', who, b, ids, b.max_completion_tokens ?? b.max_tokens ?? Math.max(1, Math.min(1024, room)), req, res);
  }

  private checkModel(model: string): void {
    if (model !== this.gw.modelId) throw new HttpError(404, 'model_not_found', `model ${JSON.stringify(model)} is not served here (served: ${this.gw.modelId})`, 'model');
  }

  /** Submit, follow, and answer (one JSON response, or SSE chunks ending with `data: [DONE]`). */
  private async run(kind: JobKind, who: Principal, b: Common, ids: { contextIds: number[]; queryIds: number[] }, maxTokens: number, req: Req, res: Res): Promise<void> {
    const stops = b.stop === undefined || b.stop === null ? [] : typeof b.stop === 'string' ? [b.stop] : b.stop;
    if (stops.some((s) => s.length === 0)) throw new InvalidInputError('invalid_value', 'stop sequences must not be empty', 'stop');
    const temperature = b.temperature ?? 1;
    const input: JobInput = {
      kind,
      contextIds: ids.contextIds,
      queryIds: ids.queryIds,
      mode: b.star?.mode ?? 'star',
      blockSize: b.star?.block_size ?? null,
      anchorSize: b.star?.anchor_size ?? null,
      hosts: b.star?.hosts ?? null,
      maxNewTokens: maxTokens,
      sampling: { temperature, topP: b.top_p ?? 1, topK: b.top_k && b.top_k > 0 ? b.top_k : 0, seed: b.seed ?? (temperature > 0 ? randomInt(2 ** 31 - 1) : 0) },
      ignoreEos: b.ignore_eos ?? false,
      cache: b.star?.cache ?? true,
    };
    const params = kind === 'chat' ? CHAT_PARAMS : COMPLETION_PARAMS;
    const jobId = randomUUID();
    const meta = await withParams(params, () => this.gw.jobs.submit(input, who, jobId, { context: kind === 'chat' ? 'messages' : 'prompt', maxNewTokens: kind === 'chat' && b.max_tokens == null ? 'max_completion_tokens' : 'max_tokens' }));
    this.gw.metrics.jobSubmitted(meta);

    const id = `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${jobId}`;
    const created = Math.floor(meta.createdAt / 1000);
    const model = this.gw.modelId;
    const object = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
    const chunk = (text: string | null, finish: string | null, role = false) =>
      kind === 'chat'
        ? { id, object, created, model, choices: [{ index: 0, delta: finish !== null ? {} : role ? { role: 'assistant', content: '' } : { content: text }, logprobs: null, finish_reason: finish }] }
        : { id, object, created, model, choices: [{ index: 0, text: text ?? '', logprobs: null, finish_reason: finish }] };

    const sse = b.stream ? new SseWriter(res, this.gw.cfg.sseKeepAliveMs) : null;
    if (sse && kind === 'chat') sse.data(chunk(null, null, true));
    const decoder = this.gw.tokenizer?.createIncrementalDecoder({ skipSpecialTokens: true }) ?? null;
    const matcher = new StopMatcher(stops);
    let text = '';
    let count = 0;
    let stoppedBySequence = false;
    const emit = (t: string) => {
      if (!t) return;
      text += t;
      sse?.data(chunk(t, null));
    };
    const takeToken = (tokenId: number) => {
      count++;
      const r = matcher.push(decoder ? decoder.push(tokenId) : '');
      emit(r.text);
      return r.stopped;
    };
    const f = this.gw.jobs.follow(jobId, (e) => {
      if (e.type !== 'token' || matcher.stopped || e.index !== count) return;
      if (takeToken(e.id)) {
        stoppedBySequence = true;
        f.stop();
        void this.gw.jobs.cancelInternal(jobId, 'stopped: a stop sequence was reached');
      }
    });
    let clientGone = false;
    res.once('close', () => {
      if (res.writableFinished) return;
      clientGone = true;
      f.stop();
      void this.gw.jobs.cancelInternal(jobId, 'cancelled: the client disconnected');
    });
    const t = await f.done;
    if (clientGone) return;

    let finish: 'stop' | 'length';
    let result: RequestResult | null = null;
    if (stoppedBySequence) finish = 'stop';
    else if (t.kind === 'done') {
      result = t.result;
      // Tokens whose events were not seen (the stream expired): take them from the result.
      for (let i = count; i < result.generatedIds.length && !matcher.stopped; i++) takeToken(result.generatedIds[i]);
      if (!matcher.stopped && decoder) emit(matcher.push(decoder.flush()).text);
      if (!matcher.stopped) emit(matcher.flush());
      finish = matcher.stopped ? 'stop' : result.finishReason;
    } else {
      const err = new StarqError(t.error.code, t.error.message, { param: t.error.param, status: statusOfJobError(t.error.code) });
      if (!sse) throw err;
      sse.data({ error: { ...err.toJSON(), type: err.status >= 500 ? 'server_error' : 'invalid_request_error' } });
      sse.data('[DONE]');
      sse.end();
      return;
    }
    const promptTokens = ids.contextIds.length + ids.queryIds.length;
    const usage: Usage = { prompt_tokens: promptTokens, completion_tokens: count, total_tokens: promptTokens + count };
    const star = { job_id: jobId, mode: meta.mode, block_size: meta.blockSize, anchor_size: meta.anchorSize, context_tokens: ids.contextIds.length, query_tokens: ids.queryIds.length, timings: result?.timings ?? null };
    if (sse) {
      sse.data(chunk(null, finish));
      if (b.stream_options?.include_usage) sse.data({ id, object, created, model, choices: [], usage });
      sse.data('[DONE]');
      sse.end();
      return;
    }
    if (kind === 'chat') {
      sendJson(res, 200, { id, object: 'chat.completion', created, model, choices: [{ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs: null, finish_reason: finish }], usage, star });
    } else {
      sendJson(res, 200, { id, object: 'text_completion', created, model, choices: [{ index: 0, text, logprobs: null, finish_reason: finish }], usage, star });
    }
  }
}
