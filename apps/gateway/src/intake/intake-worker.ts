/**
 * Worker-thread side of the intake pool: loads the model's tokenizer once, then answers
 * `{id, route, body}` with `{id, ok, result | error}`, one body at a time (see intake.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { StarqTokenizer } from '@starq/model/tokenizer';
import { StarqError } from '@starq/protocol';
import { intake, type IntakeModel, type IntakeResult, type IntakeRoute } from './intake';

export interface IntakeWorkerData {
  modelDir: string;
  vocabSize: number;
  maxPositions: number;
}

export interface IntakeRequest {
  id: number;
  route: IntakeRoute;
  body: Uint8Array;
}

export interface SerializedIntakeError {
  code: string;
  message: string;
  param: string | null;
  status: number;
}

export type IntakeResponse = { id: number; ok: true; result: IntakeResult } | { id: number; ok: false; error: SerializedIntakeError } | { id: -1; ready: true };

const data = workerData as IntakeWorkerData;
let tokenizer: StarqTokenizer | null = null;
try {
  tokenizer = StarqTokenizer.load(data.modelDir);
} catch {
  tokenizer = null; // token-id requests still work; text gets `no_tokenizer`
}
const model: IntakeModel = { tokenizer, vocabSize: data.vocabSize, maxPositions: data.maxPositions };
const port = parentPort!;

port.on('message', (req: IntakeRequest) => {
  let msg: IntakeResponse;
  const transfer: ArrayBuffer[] = [];
  try {
    const result = intake(req.route, req.body, model);
    transfer.push(result.contextIds.buffer as ArrayBuffer, result.queryIds.buffer as ArrayBuffer);
    msg = { id: req.id, ok: true, result };
  } catch (e) {
    const se =
      e instanceof StarqError
        ? { code: e.code, message: e.message, param: e.param, status: e.status }
        : { code: 'internal_error', message: `intake failed: ${(e as Error)?.stack ?? String(e)}`, param: null, status: 500 };
    msg = { id: req.id, ok: false, error: se };
  }
  port.postMessage(msg, transfer);
});
port.postMessage({ id: -1, ready: true } satisfies IntakeResponse);
