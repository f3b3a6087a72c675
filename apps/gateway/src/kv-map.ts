/**
 * Where the KV lives: per host actor, the contexts and blocks it holds (from the KV directory —
 * the handles hosts write after encoding), their bytes and last use, the host's memory limit,
 * which recent jobs use each context, and in which order the host's LRU eviction would free them.
 * Plus the one action on it: evict a context (every host holding blocks of it releases them).
 *
 * A context is identified by its context key (model + mode family + b + a + content hash; a
 * block's cache id is `<contextKey>/b<k>`), so the same document encoded with two block sizes is
 * two contexts. The private blocks of a `cache: false` request (`privateBlockKey`:
 * `<contextKey>/req:<requestId>/b<k>`) are a context of their own, named by that key.
 */
import type { KvHandle } from '@starq/protocol';
import { RemoteHost, type ClusterActorRecord, type StarqClient } from '@starq/cluster';
import type { ActorClient } from '@starq/actors';
import type { JobMeta } from './jobs';

export interface KvContextView {
  contextKey: string;
  contextHash: string;
  model: string;
  blockSize: number;
  anchorSize: number;
  /** Block indices held on this host, ascending. */
  blocks: number[];
  tokens: number;
  bytes: number;
  lastUsedAt: number;
  createdAt: number;
  /** Recent jobs (newest first, at most 10) that ran on this context. */
  jobs: string[];
  /** 1 = the first context this host's LRU eviction would free. */
  evictionRank: number;
}

export interface KvHostView {
  hostId: string;
  alive: true;
  draining: boolean;
  /** Bytes the host reports holding (its own count) and its limit (STARQ_KV_LIMIT_BYTES). */
  kvBytes: number;
  kvLimitBytes: number;
  blocks: number;
  contexts: KvContextView[];
}

export interface KvMap {
  object: 'kv.map';
  now: number;
  hosts: KvHostView[];
  /** Handles that name a host that is not alive (stale: requests re-encode those blocks). */
  orphaned: { hostId: string; cacheIds: number; bytes: number }[];
}

/** `<contextKey>/b<k>` → [contextKey, k]. */
export function splitCacheId(cacheId: string): [string, number] | null {
  const m = /^(.*)\/b(\d+)$/.exec(cacheId);
  return m ? [m[1], Number(m[2])] : null;
}

function group(handles: KvHandle[], jobsByContext: Map<string, string[]>): KvContextView[] {
  const by = new Map<string, KvContextView>();
  for (const h of handles) {
    const split = splitCacheId(h.cacheId);
    if (!split) continue;
    const [key, k] = split;
    let c = by.get(key);
    if (!c) {
      c = { contextKey: key, contextHash: h.contextHash, model: h.model, blockSize: h.blockSize, anchorSize: h.anchorSize, blocks: [], tokens: 0, bytes: 0, lastUsedAt: 0, createdAt: h.createdAt, jobs: jobsByContext.get(key)?.slice(0, 10) ?? [], evictionRank: 0 };
      by.set(key, c);
    }
    c.blocks.push(k);
    c.tokens += h.tokenEnd - h.tokenStart;
    c.bytes += h.bytes;
    c.lastUsedAt = Math.max(c.lastUsedAt, h.lastUsedAt);
    c.createdAt = Math.min(c.createdAt, h.createdAt);
  }
  const list = [...by.values()];
  for (const c of list) c.blocks.sort((a, b) => a - b);
  // The host evicts least-recently-used blocks first; a context goes when its newest block goes.
  [...list].sort((a, b) => a.lastUsedAt - b.lastUsedAt).forEach((c, i) => (c.evictionRank = i + 1));
  return list.sort((a, b) => b.lastUsedAt - a.lastUsedAt);
}

export class KvMapService {
  constructor(private readonly client: StarqClient, private readonly actors: ActorClient) {}

  /** The map; `recentJobs` (newest first) say which jobs use which context. */
  async map(recentJobs: JobMeta[]): Promise<KvMap> {
    const hosts: ClusterActorRecord[] = (await this.client.registry.list('host')).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const jobsByContext = new Map<string, string[]>();
    for (const j of recentJobs) if (j.contextKey) jobsByContext.set(j.contextKey, [...(jobsByContext.get(j.contextKey) ?? []), j.id]);
    const views: KvHostView[] = [];
    for (const h of hosts) {
      const ids = await this.client.directory.hostBlocks(h.id);
      const handles = (await this.client.directory.getMany(ids)).filter((x): x is KvHandle => x !== null && x.hostId === h.id);
      const status = h.status as typeof h.status & { draining?: boolean };
      views.push({
        hostId: h.id,
        alive: true,
        draining: status.draining === true,
        kvBytes: h.status.kvBytes,
        kvLimitBytes: h.capacity.freeKvBytes,
        blocks: h.status.blocks,
        contexts: group(handles, jobsByContext),
      });
    }
    return { object: 'kv.map', now: Date.now(), hosts: views, orphaned: await this.orphaned(new Set(hosts.map((h) => h.id))) };
  }

  /** Handles whose host is gone, per host id. */
  private async orphaned(alive: Set<string>): Promise<KvMap['orphaned']> {
    const out: KvMap['orphaned'] = [];
    for (const [hostId, ids] of await this.deadHostBlocks(alive)) {
      const handles = (await this.client.directory.getMany(ids)).filter((x): x is KvHandle => x !== null && x.hostId === hostId);
      if (handles.length > 0) out.push({ hostId, cacheIds: handles.length, bytes: handles.reduce((s, x) => s + x.bytes, 0) });
    }
    return out;
  }

  /** Cache ids indexed under hosts not in `alive` (scans the directory's per-host index keys). */
  private async deadHostBlocks(alive: Set<string>): Promise<Map<string, string[]>> {
    const pattern = this.client.keys.hostKvIndex('*');
    const prefix = pattern.slice(0, -1);
    const out = new Map<string, string[]>();
    let cursor = '0';
    do {
      const [next, keys] = await this.client.redis.scan(cursor, 'MATCH', pattern, 'COUNT', 200);
      cursor = next;
      for (const key of keys) {
        const hostId = key.slice(prefix.length);
        if (!alive.has(hostId)) out.set(hostId, await this.client.redis.smembers(key));
      }
    } while (cursor !== '0');
    return out;
  }

  /**
   * Evict one context from every live host that holds blocks of it (the hosts release the caches
   * and remove their handles); handles left on dead hosts are removed too. Resolves with what was
   * freed. A request already running on this context loses its blocks and re-encodes them.
   */
  async evict(contextKey: string): Promise<{ contextKey: string; hosts: { hostId: string; blocks: number; bytes: number }[]; staleHandlesRemoved: number }> {
    const hosts = await this.client.registry.list('host');
    const freed: { hostId: string; blocks: number; bytes: number }[] = [];
    for (const h of hosts) {
      const ids = (await this.client.directory.hostBlocks(h.id)).filter((id) => splitCacheId(id)?.[0] === contextKey);
      if (ids.length === 0) continue;
      const handles = (await this.client.directory.getMany(ids)).filter((x): x is KvHandle => x !== null && x.hostId === h.id);
      await new RemoteHost(h.id, this.actors.handle(h.id)).release(ids);
      freed.push({ hostId: h.id, blocks: handles.length, bytes: handles.reduce((s, x) => s + x.bytes, 0) });
    }
    // Handles of the context that still exist name dead hosts: drop them as well.
    let stale = 0;
    const alive = new Set(hosts.map((h) => h.id));
    for (const [hostId, all] of await this.deadHostBlocks(alive)) {
      const ids = all.filter((id) => splitCacheId(id)?.[0] === contextKey);
      if (ids.length === 0) continue;
      await this.client.directory.remove(ids, hostId);
      stale += ids.length;
    }
    return { contextKey, hosts: freed, staleHandlesRemoved: stale };
  }
}
