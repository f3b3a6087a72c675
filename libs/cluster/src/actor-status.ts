/**
 * The actors of a cluster as operators see them: live ones from the registry, and — from the
 * supervisors of `starq cluster up` processes — the ones starting, restarting or given up on.
 */
import type { ClusterActorRecord } from './registry';
import type { SupervisedProcess, SupervisorRecord } from './launcher/supervisor';

/** One actor as `starq cluster status` and the gateway's /admin show it. */
export interface ActorStatusRow {
  id: string;
  type: string;
  /** `alive` (in the registry), `starting`, `restarting` or `dead` (from a supervisor). */
  state: 'alive' | 'starting' | 'restarting' | 'dead';
  alive: boolean;
  model: string | null;
  blocks: number | null;
  kvBytes: number | null;
  busy: boolean | null;
  /** A host handing its blocks over before it exits. */
  draining: boolean;
  /** `cpu`, `cuda:<device>` (null when not alive or not reported). */
  executionProvider: string | null;
  pid: number | null;
  hostname: string;
  lastHeartbeatMsAgo: number | null;
  /** Supervised processes: restarts so far, how the last incarnation ended, when the next starts. */
  supervised: string | null;
  restarts: number;
  lastExit: string | null;
  nextStartInMs: number | null;
}

/**
 * Registry records and supervisor states as one list: a supervised process that exited is shown
 * `restarting` or `dead` at once, even while its registry record has not expired yet.
 */
export function actorStatusRows(records: ClusterActorRecord[], supervisors: SupervisorRecord[], now: number): ActorStatusRow[] {
  const down = new Map<string, { p: SupervisedProcess; host: string }>();
  const former = new Set<string>();
  for (const s of supervisors) {
    for (const p of s.processes) {
      for (const id of p.formerIds ?? []) former.add(id);
      if (p.state === 'restarting' || p.state === 'dead' || p.state === 'starting') down.set(p.actorId, { p, host: s.hostname });
    }
  }
  const exit = (p: SupervisedProcess) => (p.lastExit ? (p.lastExit.signal ? `killed by ${p.lastExit.signal}` : `exit ${p.lastExit.code}`) : null);
  const rows: ActorStatusRow[] = [];
  for (const a of records) {
    const d = down.get(a.id);
    if (former.has(a.id) || (d && d.p.pid === null)) continue; // its process is gone (its record has not expired yet)
    const ep = a.capacity.executionProvider ? (a.capacity.executionProvider === 'cuda' ? `cuda:${a.capacity.cudaDeviceId ?? 0}` : a.capacity.executionProvider) : null;
    rows.push({ id: a.id, type: a.type, state: 'alive', alive: true, model: a.capacity.model, blocks: a.status.blocks, kvBytes: a.status.kvBytes, busy: a.status.busy, draining: a.status.draining === true, executionProvider: ep, pid: a.pid, hostname: a.hostname, lastHeartbeatMsAgo: now - a.heartbeatAt, supervised: null, restarts: 0, lastExit: null, nextStartInMs: null });
    if (d) down.delete(a.id);
  }
  for (const [id, { p, host }] of down) {
    rows.push({ id, type: p.kind, state: p.state as ActorStatusRow['state'], alive: false, model: null, blocks: null, kvBytes: null, busy: null, draining: false, executionProvider: null, pid: p.pid, hostname: host, lastHeartbeatMsAgo: null, supervised: p.name, restarts: p.restarts, lastExit: exit(p), nextStartInMs: p.nextStartAt !== null ? p.nextStartAt - now : null });
  }
  return rows.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
}

