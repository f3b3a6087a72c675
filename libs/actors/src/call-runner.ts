/**
 * Running one actor call and encoding its reply frame, whichever thread serves it: the
 * `ActorServer` (pub/sub and its own direct links) and the `WorkerLinkServer` (direct links
 * answered in a worker thread) share it, so a call gets the same deadline check, error replies and
 * trace wherever it runs.
 */
import { encode, message, toWireError, type CallMessage, type WireError } from '@starq/protocol';

/** Epoch ms with sub-ms precision (comparable across processes on one machine). */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Error codes the server puts in replies it generates itself. */
export const SERVER_ERROR_CODES = {
  unknownMethod: 'unknown_method',
  deadlineExceeded: 'deadline_exceeded',
  stopped: 'actor_stopped',
  replyEncode: 'reply_encode_failed',
} as const;

/** What a handler learns about the call besides its args. */
export interface CallContext {
  actorId: string;
  callId: string;
  /** Caller's reply channel. */
  from: string;
  method: string;
  /** Epoch ms; work past it will not be awaited by the caller. */
  deadline: number;
}

export type MethodHandler<A = any, R = unknown> = (args: A, ctx: CallContext) => R | Promise<R>;

/** A decoded call with its trace timestamps (epoch ms): bytes received, message decoded. */
export interface ReceivedCall {
  call: CallMessage;
  received: number;
  decoded: number;
}

/** How a call ended: ran (`ok`), its handler threw or its result could not be encoded (`failed`), or its deadline had passed (`expired`, not run). */
export type CallOutcome = 'ok' | 'failed' | 'expired';

/**
 * Runs `fn` on the call's args (unless its deadline has passed) and encodes the reply. `reply` is
 * null only when not even an error reply could be encoded (`problem` says why).
 */
export async function runCall(inc: ReceivedCall, actorId: string, fn: MethodHandler): Promise<{ outcome: CallOutcome; reply: Buffer | null; problem?: string }> {
  const call = inc.call;
  if (Date.now() > call.deadline) {
    return {
      outcome: 'expired',
      ...errorReply(inc, {
        code: SERVER_ERROR_CODES.deadlineExceeded,
        message: `call ${call.method} reached actor ${actorId} ${Date.now() - call.deadline} ms after its deadline and was not run`,
        param: null,
        name: 'DeadlineExceededError',
        status: 504,
      }),
    };
  }
  const started = preciseNow();
  let result: unknown;
  try {
    result = await fn(call.args, { actorId, callId: call.id, from: call.from, method: call.method, deadline: call.deadline });
  } catch (err) {
    return { outcome: 'failed', ...errorReply(inc, toWireError(err), started) };
  }
  const trace = call.trace ? { received: inc.received, decoded: inc.decoded, started, finished: preciseNow() } : undefined;
  try {
    return { outcome: 'ok', reply: encode(message('reply', { id: call.id, ok: true, result, ...(trace ? { trace } : {}) })) };
  } catch (err) {
    return {
      outcome: 'failed',
      ...errorReply(inc, {
        code: SERVER_ERROR_CODES.replyEncode,
        message: `result of ${call.method} cannot be sent: ${(err as Error).message}`,
        param: null,
        name: 'ReplyEncodeError',
        status: 500,
      }),
    };
  }
}

/** The encoded error reply to a call (`reply` null, with the `problem`, when even that cannot be encoded). */
export function errorReply(inc: ReceivedCall, error: WireError, started = preciseNow()): { reply: Buffer | null; problem?: string } {
  const call = inc.call;
  const trace = call.trace ? { received: inc.received, decoded: inc.decoded, started, finished: preciseNow() } : undefined;
  try {
    return { reply: encode(message('reply', { id: call.id, ok: false, error, ...(trace ? { trace } : {}) })) };
  } catch (err) {
    return { reply: null, problem: `cannot encode error reply to ${call.from}: ${(err as Error).message}` };
  }
}

/** The `actor_stopped` error of a call that reached a stopping actor. */
export function stoppedError(actorId: string): WireError {
  return { code: SERVER_ERROR_CODES.stopped, message: `actor ${actorId} is stopping`, param: null, name: 'ActorStoppedError' };
}
