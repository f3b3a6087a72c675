/**
 * The failure map (failure.ts): every way a job can end becomes one of the documented job error
 * codes, with a message naming what happened; docs/API.md "Job errors" lists exactly those codes
 * with the same statuses.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ActorDiedError, ActorTimeoutError, RemoteCallError } from '@starq/actors';
import { HostCallError } from '@starq/attention';
import { HostLostError } from '@starq/model/serving/host-lost-error';
import { StarqError } from '@starq/protocol';
import { describeFailure, documentedFailure, failedChildKey, jobErrorOf, JOB_ERRORS, statusOfJobError } from './failure';

const documented = (code: string) => expect(Object.keys(JOB_ERRORS)).toContain(code);

describe('BullMQ reasons (describeFailure)', () => {
  it('a request that stalled too often: query_actor_lost naming its query actors and the stalls', () => {
    const d = describeFailure('job stalled more than allowable limit', { requestId: 'r1', job: 'request', actors: ['query-0', 'query-1'], stalls: 2 });
    expect(d.code).toBe('query_actor_lost');
    expect(d.message).toMatch(/request r1/);
    expect(d.message).toMatch(/query-0, query-1/);
    expect(d.message).toMatch(/2 times/);
    expect(d.message).not.toMatch(/allowable/);
  });

  it('a block job that stalled too often: host_lost naming the block and its hosts', () => {
    const d = describeFailure('job stalled more than allowable limit', { requestId: 'r2', job: 'block', block: 3, actors: ['host-1', 'host-2', 'host-0'], stalls: 3 });
    expect(d.code).toBe('host_lost');
    expect(d.message).toMatch(/block 3 of request r2/);
    expect(d.message).toMatch(/host-1, host-2, host-0/);
  });

  it("a worker's lost lock: the actor kind's *_lost code", () => {
    expect(describeFailure('Missing lock for job r3. moveToFinished', { requestId: 'r3', job: 'request', actors: ['query-0'] }).code).toBe('query_actor_lost');
    expect(describeFailure('Lock mismatch for job r3-b0. Cmd moveToFinished from active', { requestId: 'r3', job: 'block', block: 0 }).code).toBe('host_lost');
  });

  it('Redis texts, a job Redis lost, a child whose record is gone: redis_unavailable', () => {
    for (const reason of ['Reached the max retries per request limit (which is 20). Refer to "maxRetriesPerRequest" option for details.', 'Connection is closed.', 'connect ECONNREFUSED 127.0.0.1:6399']) {
      expect(describeFailure(reason, { requestId: 'r4', job: 'request' }).code).toBe('redis_unavailable');
    }
    const lost = describeFailure(null, { requestId: 'r4', job: 'request' });
    expect(lost.code).toBe('redis_unavailable');
    expect(lost.message).toMatch(/no longer in the queue/);
    const child = describeFailure('child p:bull:blocks:r4-b1 failed', { requestId: 'r4', job: 'request' });
    expect(child.code).toBe('redis_unavailable');
    expect(child.message).toMatch(/p:bull:blocks:r4-b1/);
    expect(failedChildKey('child p:bull:blocks:r4-b1 failed')).toBe('p:bull:blocks:r4-b1');
    expect(failedChildKey('job stalled more than allowable limit')).toBeNull();
  });

  it('a reason nobody knows: internal_error keeping the text (never a generic code)', () => {
    const d = describeFailure('something new in BullMQ 6', { requestId: 'r5', job: 'request' });
    expect(d.code).toBe('internal_error');
    expect(d.message).toMatch(/something new in BullMQ 6/);
  });
});

describe('errors a query actor run throws (jobErrorOf) and error records (documentedFailure)', () => {
  it('a host lost and not recovered: host_lost with the host and the recoveries', () => {
    const e = new HostLostError('r6', 'host-2', 3, ['host-1', 'host-2'], 'it already used its 3 recoveries', new ActorDiedError('host-2', 'attendMany', 'no subscriber'));
    const d = jobErrorOf(e, 'r6');
    expect(d.code).toBe('host_lost');
    expect(d.message).toMatch(/host host-2/);
    expect(d.message).toMatch(/recoveries before: 3/);
    expect(d.message).toMatch(/hosts lost: host-1, host-2/);
  });

  it('host calls failing outside the loop (Ring phase 1, the first placement): host_lost naming the host', () => {
    const viaCall = jobErrorOf(new HostCallError('host-7', new ActorTimeoutError('host-7', 'encodeBlock', 5000), 're-encoding block 2'), 'r7');
    expect(viaCall).toMatchObject({ code: 'host_lost' });
    expect(viaCall.message).toMatch(/host host-7 failed re-encoding block 2/);
    expect(viaCall.message).toMatch(/actor_timeout/);
    const direct = jobErrorOf(new ActorDiedError('host-8', 'ringStep', 'its record expired'), 'r7');
    expect(direct.code).toBe('host_lost');
    expect(direct.message).toMatch(/host-8/);
    const stopping = jobErrorOf(new RemoteCallError('host-9', 'attendMany', { code: 'actor_stopped', message: 'actor host-9 is stopping', param: null, name: 'ActorStoppedError' }), 'r7');
    expect(stopping.code).toBe('host_lost');
  });

  it('documented codes pass unchanged; no live host is host_lost; driver errors are redis_unavailable; the rest internal_error', () => {
    expect(jobErrorOf(new StarqError('cancelled', 'request r8 was cancelled', { status: 409 }), 'r8')).toEqual({ code: 'cancelled', message: 'request r8 was cancelled', param: null });
    expect(jobErrorOf(new StarqError('context_expired', 'gone', { param: 'context' }), 'r8')).toEqual({ code: 'context_expired', message: 'gone', param: 'context' });
    expect(jobErrorOf(new StarqError('cluster_unavailable', 'no live host actor to encode the context on', { status: 503 }), 'r8').code).toBe('host_lost');
    expect(jobErrorOf(new Error('Connection is closed.'), 'r8').code).toBe('redis_unavailable');
    const bug = jobErrorOf(new TypeError("Cannot read properties of undefined (reading 'x')"), 'r8');
    expect(bug.code).toBe('internal_error');
    expect(bug.message).toMatch(/TypeError/);
    const odd = jobErrorOf(new StarqError('protocol_error', 'bad partial', { param: 'out' }), 'r8');
    expect(odd.code).toBe('internal_error');
    expect(odd.message).toMatch(/\[protocol_error\] bad partial/);
    // A record written by a host process whose processor met a closed connection.
    expect(documentedFailure({ code: 'internal_error', message: 'Connection is closed.', param: null }, 'r8').code).toBe('redis_unavailable');
    expect(documentedFailure({ code: 'actor_died', message: 'actor host-1 is gone', param: null }, 'r8').code).toBe('host_lost');
  });

  it('whatever goes in, the code that comes out is documented', () => {
    const inputs: unknown[] = [new Error('x'), 'a string', null, new StarqError('weird_code', 'm'), new ActorDiedError('h', 'm', 'r'), new HostCallError('h', new Error('boom'))];
    for (const x of inputs) documented(jobErrorOf(x, 'r9').code);
    for (const r of [null, 'job stalled more than allowable limit', 'child k failed', 'ECONNRESET', 'Missing lock for job', '???']) {
      documented(describeFailure(r, { requestId: 'r9', job: 'request' }).code);
      documented(describeFailure(r, { requestId: 'r9', job: 'block', block: 0 }).code);
    }
  });
});

describe('docs/API.md "Job errors"', () => {
  it('lists exactly the codes of JOB_ERRORS, with the same HTTP statuses', () => {
    const api = fs.readFileSync(path.resolve(__dirname, '../../../docs/API.md'), 'utf8');
    const m = /<!-- job-errors:begin -->([\s\S]*?)<!-- job-errors:end -->/.exec(api);
    expect(m).not.toBeNull();
    const rows = [...m![1].matchAll(/^\| (\d{3}) \| `([a-z_]+)` \|/gm)].map((r) => [r[2], Number(r[1])] as const);
    expect(Object.fromEntries(rows)).toEqual({ ...JOB_ERRORS });
    expect(rows).toHaveLength(Object.keys(JOB_ERRORS).length);
    expect(statusOfJobError('host_lost')).toBe(503);
    expect(statusOfJobError('not_a_job_error')).toBe(500);
  });
});
