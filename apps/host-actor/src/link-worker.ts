/**
 * The host's direct links, served in its engine's worker thread (a worker module, libs/model
 * runtime/worker-module.ts): `attend` and `attendMany` calls are checked and answered right there,
 * socket → engine thread → socket, without waking the main thread; every other call (encodeBlock,
 * release, ring steps, stats, drain) is relayed to the host's main-thread ActorServer.
 *
 * What the main thread keeps track of is reported to it every `reportEveryMs` over `reports`:
 * blocks used (their last-use time, for LRU eviction and the KV handles) and the time of every
 * attend call (starq_host_attend_seconds). A block the engine does not hold fails the call with
 * `kv_not_found`, as on the main thread.
 */
import type { MessagePort } from 'node:worker_threads';
import type { AttendRequest } from '@starq/attention';
import { WorkerLinkServer } from '@starq/actors';
import { HOST_CALLS, HOST_METHODS, KvNotFoundError } from '@starq/cluster';
import type { WorkerModuleContext } from '@starq/model/runtime/worker-module';
import { checkAttend, type AttendShape } from './attend-checks';

export interface LinkWorkerData {
  actorId: string;
  /** Listen address (STARQ_LINK). */
  address: string;
  /** The relay channel's worker end (the main end goes to `ActorServer.relayLinks`). */
  relay: MessagePort;
  /** Where {@link LinkWorkerReport}s go. */
  reports: MessagePort;
  model: AttendShape;
  /** @defaultValue 1000 */
  reportEveryMs?: number;
}

/** What the link thread tells the host's main thread, periodically. */
export interface LinkWorkerReport {
  /** Blocks attended to since the last report, with the time (epoch ms) of their last use. */
  used: [cacheId: string, at: number][];
  /** Seconds taken by each attend call answered since the last report, and whether it succeeded. */
  attends: [seconds: number, ok: boolean][];
}

export async function setupWorkerModule({ executor, data }: WorkerModuleContext<LinkWorkerData>): Promise<{ address: string }> {
  const used = new Map<string, number>();
  let attends: [number, boolean][] = [];
  const timer = setInterval(() => {
    if (used.size === 0 && attends.length === 0) return;
    const report: LinkWorkerReport = { used: [...used], attends };
    used.clear();
    attends = [];
    data.reports.postMessage(report);
  }, data.reportEveryMs ?? 1000);
  timer.unref();

  const held = (cacheIds: string[]) => {
    const now = Date.now();
    for (const id of cacheIds) {
      if (!executor.hasCache(id)) throw new KvNotFoundError(id, data.actorId);
      used.set(id, now);
    }
  };
  const timed = async <T>(fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    let ok = false;
    try {
      const r = await fn();
      ok = true;
      return r;
    } finally {
      attends.push([(performance.now() - t0) / 1000, ok]);
    }
  };

  const server = new WorkerLinkServer({ actorId: data.actorId, address: data.address, relay: data.relay });
  server.method(HOST_METHODS.attend, (args: unknown) => {
    const req = HOST_CALLS.attend.args(args);
    checkAttend(data.model, req, 'attend');
    held(req.cacheIds);
    return timed(() => executor.attendCaches(req.cacheIds, req.layer, req.q, req.qpos));
  });
  server.method(HOST_METHODS.attendMany, (args: unknown) => {
    const { items } = HOST_CALLS.attendMany.args(args);
    items.forEach((it: AttendRequest, i: number) => checkAttend(data.model, it, `attendMany.items[${i}]`));
    for (const it of items) held(it.cacheIds);
    return timed(() => executor.attendMany(items));
  });
  return { address: await server.start() };
}
