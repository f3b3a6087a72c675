/**
 * Handing a draining host's KV blocks to the other hosts: each block is re-encoded on a live,
 * non-draining host from the phase-1 input this host encoded it from (a block is a pure function
 * of its tokens and positions, so the copy is exact), and its KV handle is rewritten to name the
 * new host. The draining host keeps answering attend calls for its copies until it stops; a query
 * actor whose next call then fails re-reads the handles and continues on the new host (the
 * request's tokens do not change: the failed step is rolled back and retried).
 */
import type { EncodeBlockRequest } from '@starq/attention';
import type { ActorClient } from '@starq/actors';
import { RemoteHost, type ClusterRegistry, type KvDirectory } from '@starq/cluster';

export interface HandoffResult {
  /** Blocks now held by another host. */
  handed: number;
  /** Blocks not handed over (no handle naming this host, a ring block, no target, a failed re-encode, or the deadline): their requests re-encode them on demand. */
  skipped: number;
  /** Milliseconds spent. */
  ms: number;
}

export interface HandoffOptions {
  selfId: string;
  /** Blocks this host holds, with the phase-1 input each was encoded from. */
  blocks: ReadonlyMap<string, EncodeBlockRequest>;
  registry: ClusterRegistry;
  directory: KvDirectory;
  client: ActorClient;
  /** Epoch ms: no new re-encode starts after it. */
  deadline: number;
  log: (line: string) => void;
}

/** Re-encodes every block of `blocks` on the least-loaded other live host, in turn. */
export async function handOffBlocks(o: HandoffOptions): Promise<HandoffResult> {
  const t0 = Date.now();
  let handed = 0;
  let skipped = 0;
  const load = new Map<string, number>();
  const failed = new Set<string>();
  for (const [cacheId, input] of o.blocks) {
    if (Date.now() >= o.deadline) {
      skipped += o.blocks.size - handed - skipped;
      o.log(`handoff: deadline reached; ${skipped} block(s) left to be re-encoded on demand`);
      break;
    }
    const handle = await o.directory.get(cacheId);
    if (!handle || handle.hostId !== o.selfId) {
      skipped++; // a ring block (no handle) or one already re-encoded elsewhere
      continue;
    }
    const targets = (await o.registry.list('host')).filter((h) => h.id !== o.selfId && !h.status.draining && !failed.has(h.id));
    if (targets.length === 0) {
      skipped++;
      o.log(`handoff: no other live host for block ${cacheId}`);
      continue;
    }
    for (const t of targets) if (!load.has(t.id)) load.set(t.id, t.status.kvBytes);
    const target = targets.map((t) => t.id).sort((a, b) => load.get(a)! - load.get(b)! || (a < b ? -1 : 1))[0];
    try {
      const remote = new RemoteHost(target, o.client.handle(target), { encodeMs: Math.max(1000, o.deadline - Date.now()) });
      const copy = await remote.encodeBlock(input);
      const { createdAt: _c, lastUsedAt: _l, ...rest } = handle;
      await o.directory.putEncoded({ ...rest, hostId: target, bytes: copy.bytes });
      load.set(target, load.get(target)! + copy.bytes);
      handed++;
    } catch (e) {
      failed.add(target);
      skipped++;
      o.log(`handoff: block ${cacheId} to ${target} failed (${(e as Error).message}); it will be re-encoded on demand`);
    }
  }
  return { handed, skipped, ms: Date.now() - t0 };
}
