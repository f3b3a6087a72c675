/**
 * A host actor process: owns KV blocks of contexts in its own engine (a worker thread) and
 *  - takes phase-1 block jobs from the BullMQ `blocks` queue (any free host takes the next block),
 *    encodes them and registers a KV handle in Redis;
 *  - answers actor calls (the phase-2 hot path; over its direct link — advertised in its registry
 *    record and served in the engine's worker thread, which answers `attend`/`attendMany` itself
 *    (link-worker.ts) — or Redis pub/sub): `attend` for its blocks, `encodeBlock`
 *    (re-encoding a lost block, by lineage), the Ring steps, `release`, `stats`;
 *  - keeps its KV under a memory limit by evicting least-recently-used blocks;
 *  - heartbeats in the registry (blocks held, KV bytes, draining);
 *  - serves /health, /ready and /metrics on its health port (STARQ_HEALTH_PORT);
 *  - drains on SIGTERM or the `drain` command: no new block jobs, marked draining, calls in
 *    flight finished, its blocks re-encoded on the other hosts (block-handoff.ts), then it stops.
 * Restart semantics: a restarted host has no blocks; its stale handles are ignored by clients
 * (their host id is not alive) and its blocks are re-encoded where needed.
 */
import { MessageChannel } from 'node:worker_threads';
import type { Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { phase1Positions, type AttendRequest, type EncodeBlockRequest } from '@starq/attention';
import { ActorClient, ActorServer, createWorker, failJob } from '@starq/actors';
import { ActorBoot, ClusterRegistry, ContextLengthMismatchError, fetchContextSegments, isRedisDown, KvDirectory, KvNotFoundError, serveHost, StarqReaper, validateBlockJob, type ActorConfig, type BlockJobData } from '@starq/cluster';
import { loadConfig } from '@starq/model/config';
import { LocalHost } from '@starq/model/local/local-host';
import { positionLimit } from '@starq/model/positions';
import { ModelEngine } from '@starq/model/runtime/engine';
import type { ExecutionProviderChoice } from '@starq/model/runtime/execution-provider';
import type { ModelConfig } from '@starq/model/types';
import { ProtocolError, RedisKeys, StarqError, type KvHandle } from '@starq/protocol';
import { checkAttend } from './attend-checks';
import { handOffBlocks, type HandoffResult } from './block-handoff';
import { HostMetrics } from './host-metrics';
import type { LinkWorkerData, LinkWorkerReport } from './link-worker';

interface HeldBlock {
  bytes: number;
  tokens: number;
  lastUsed: number;
  /** What it was encoded from (re-encoded from it on another host when this one drains); null for a Ring block. */
  input: EncodeBlockRequest | null;
  createdAt: number;
  /** The block's KV handle as last seen in the directory (re-announced if Redis loses it). */
  handle?: KvHandle;
}

/** A block younger than this is left alone by reconcile (its handle may not be written yet). */
const RECONCILE_GRACE_MS = 10000;
/** How often a host compares what it holds with the KV directory. */
const RECONCILE_EVERY_MS = 10000;

export class HostActor {
  private redis!: Redis;
  private bull!: Redis;
  private engine!: ModelEngine;
  private local!: LocalHost;
  private registry!: ClusterRegistry;
  private server!: ActorServer;
  private worker!: Worker;
  private directory!: KvDirectory;
  private reaper!: StarqReaper;
  private reconciler: NodeJS.Timeout | null = null;
  private reconciling: Promise<unknown> | null = null;
  private readonly keys: RedisKeys;
  private readonly model: ModelConfig;
  private readonly held = new Map<string, HeldBlock>();
  private readonly bytesPerToken: number;
  private boot: ActorBoot | null = null;
  /** Port of the health server once started. */
  get healthPort(): number | null {
    return this.boot?.healthPort ?? null;
  }
  private drainClient: ActorClient | null = null;
  private draining = false;
  /** The execution provider this host computes on (resolved at start). */
  private provider!: ExecutionProviderChoice;
  readonly metrics: HostMetrics;
  /** Called when a `drain` command arrives (main.ts starts the process's drain). */
  onDrainCommand: (() => void) | null = null;

  constructor(readonly cfg: ActorConfig) {
    this.keys = new RedisKeys(cfg.prefix);
    this.model = loadConfig(cfg.modelDir);
    this.bytesPerToken = this.model.numLayers * 2 * this.model.numKvHeads * this.model.headDim * 4 + this.model.numLayers * 8;
    this.metrics = new HostMetrics(cfg.actorId, () => ({ ...this.stats(), draining: this.draining }));
  }

  get id(): string {
    return this.cfg.actorId;
  }

  async start(): Promise<void> {
    this.boot = await ActorBoot.start({
      cfg: this.cfg,
      model: this.model,
      role: 'host',
      metrics: this.metrics.registry,
      registry: () => this.registry,
      draining: () => this.draining,
      testEncodeDelayMs: this.cfg.testEncodeDelayMs,
    });
    this.redis = this.boot.redis;
    this.bull = this.boot.bull;
    this.engine = this.boot.engine;
    this.provider = this.boot.provider!;
    this.local = new LocalHost(this.id, this.engine);
    this.directory = new KvDirectory(this.redis, this.keys);
    this.registry = new ClusterRegistry(this.redis, { keys: this.keys, heartbeatMs: this.cfg.heartbeatMs, ttlMs: this.cfg.ttlMs });
    const mainLink = this.cfg.link && this.cfg.linkThread === 'main' ? this.cfg.link : undefined;
    this.server = new ActorServer(this.redis, { actorId: this.id, keys: this.keys, link: mainLink });
    serveHost(this.server, {
      attend: (req) => this.attend(req),
      attendMany: (a) => this.attendMany(a.items),
      encodeBlock: (req) => this.metrics.track('encode_call', () => this.encode(req)),
      ringStart: (a) => this.ringStart(a),
      ringQkv: (a) => this.local.ringQkv(a.cacheId, a.layer),
      ringAttend: (a) => this.local.ringAttend(a.cacheId, a.layer, a.kv),
      ringPost: (a) => this.local.ringPost(a.cacheId, a.layer),
      ringEnd: (a) => this.local.ringEnd(a.cacheId),
      release: (a) => this.release(a.cacheIds),
      stats: () => this.stats(),
      drain: () => {
        this.onDrainCommand?.();
        return { draining: true };
      },
    });
    await this.server.start();
    const link = mainLink ? this.server.linkAddress : this.cfg.link ? await this.startLinks(this.cfg.link) : null;
    await this.registry.register({
      id: this.id,
      type: 'host',
      link: this.cfg.linkAdvertise ?? link,
      capacity: {
        model: this.cfg.modelId,
        freeKvBytes: this.cfg.kvLimitBytes,
        threads: this.cfg.threads,
        kvBytesPerToken: this.bytesPerToken,
        maxPositions: positionLimit(this.model),
        executionProvider: this.provider.provider,
        ...(this.provider.provider === 'cuda' ? { cudaDeviceId: this.provider.cudaDeviceId } : {}),
      },
    });
    this.reaper = new StarqReaper({ redis: this.redis, bull: this.bull, keys: this.keys, registry: this.registry, actorWaitMs: this.cfg.actorWaitMs });
    this.worker = createWorker<BlockJobData>(this.keys.queues.blocks, (job) => this.metrics.track('block_job', () => this.processBlockJob(job)), {
      connection: this.bull,
      prefix: this.keys.bullPrefix,
      concurrency: 1,
      lockDuration: 30000,
      stalledInterval: 1000, // a dead host's job is requeued by the next check once the reaper unlocked it
      name: this.id, // the job's processedBy: the reaper checks its liveness
      maxStalledCount: 2,
    });
    this.worker.on('error', (e) => !isRedisDown(e) && process.stderr.write(`host-actor ${this.id}: queue worker: ${e.message}\n`)); // outages are logged once by the connection
    this.reaper.start();
    // After Redis comes back (a reconnect: the first 'ready' happened before this listener), and
    // every RECONCILE_EVERY_MS, make the directory and what this host holds agree.
    this.redis.on('ready', () => this.scheduleReconcile());
    this.reconciler = setInterval(() => this.scheduleReconcile(), RECONCILE_EVERY_MS);
    this.reconciler.unref();
  }

  /**
   * Direct links served in the engine's worker thread (link-worker.ts): it answers attend calls
   * itself and relays the other calls to this thread's ActorServer. Returns the bound address.
   */
  private async startLinks(address: string): Promise<string> {
    const relay = new MessageChannel();
    const reports = new MessageChannel();
    this.server.relayLinks(relay.port1);
    reports.port1.on('message', (r: LinkWorkerReport) => this.applyLinkReport(r));
    reports.port1.unref();
    const data: LinkWorkerData = { actorId: this.id, address, relay: relay.port2, reports: reports.port2, model: this.model };
    const r = await this.engine.startWorkerModule<{ address: string }>(require.resolve('./link-worker'), data, [relay.port2, reports.port2]);
    return r.address;
  }

  /** Block use and attend times of the calls the link thread answered. */
  private applyLinkReport(r: LinkWorkerReport): void {
    for (const [id, at] of r.used) {
      const h = this.held.get(id);
      if (h && h.lastUsed < at) h.lastUsed = at;
    }
    for (const [seconds, ok] of r.attends) this.metrics.attended(seconds, ok);
  }

  private scheduleReconcile(): void {
    if (this.reconciling || this.draining) return;
    this.reconciling = this.reconcile()
      .then((r) => {
        if (r.announced + r.freed > 0) process.stderr.write(`host-actor ${this.id}: reconciled with Redis: re-announced ${r.announced} block(s), freed ${r.freed} that nothing points to\n`);
      })
      .catch(() => undefined)
      .finally(() => (this.reconciling = null));
  }

  /**
   * Makes the KV directory and this host's blocks agree (after a Redis restart the directory may
   * have lost them): a held block whose handle is gone is re-announced from the copy this host
   * keeps; one with no copy, or whose handle now names another host (it was re-encoded there while
   * this host looked dead), is freed. Blocks younger than RECONCILE_GRACE_MS and Ring blocks are
   * left alone; nothing is done while Redis is unreachable (absence then means nothing).
   */
  async reconcile(): Promise<{ announced: number; freed: number }> {
    const now = Date.now();
    const ids = [...this.held].filter(([, h]) => h.input !== null && now - h.createdAt > RECONCILE_GRACE_MS).map(([id]) => id);
    if (ids.length === 0 || this.redis.status !== 'ready') return { announced: 0, freed: 0 };
    const handles = await this.directory.getMany(ids, { strict: true });
    const free: string[] = [];
    let announced = 0;
    for (const [i, id] of ids.entries()) {
      const mine = this.held.get(id);
      if (!mine) continue;
      const h = handles[i];
      if (h && h.hostId === this.id) mine.handle = h;
      else if (!h && mine.handle) {
        await this.directory.put({ ...mine.handle, lastUsedAt: mine.lastUsed });
        announced++;
      } else free.push(id);
    }
    if (free.length > 0) await this.release(free);
    return { announced, freed: free.length };
  }

  /**
   * Drain: marked draining in the registry (and /ready turns 503), no new block jobs (the one
   * running finishes), then every block this host holds is re-encoded on another live host and
   * its handle moved there. Attend calls keep being answered until {@link stop}.
   */
  async drain(deadline: number): Promise<HandoffResult> {
    this.draining = true;
    await this.registry?.update({ draining: true }).catch(() => undefined);
    await this.worker?.close().catch(() => undefined);
    this.drainClient = new ActorClient(this.redis, { keys: this.keys, registry: this.registry, defaultTimeoutMs: this.cfg.attendTimeoutMs });
    const blocks = new Map([...this.held].filter(([, h]) => h.input !== null).map(([id, h]) => [id, h.input!]));
    const r = await handOffBlocks({ selfId: this.id, blocks, registry: this.registry, directory: this.directory, client: this.drainClient, deadline, log: (l) => process.stderr.write(`host ${this.id}: ${l}\n`) });
    this.metrics.handedOffBlocks(r.handed);
    process.stderr.write(`host ${this.id}: drain handed ${r.handed} block(s) to other hosts in ${r.ms} ms (${r.skipped} left to on-demand re-encoding)\n`);
    return r;
  }

  async stop(): Promise<void> {
    if (this.reconciler) clearInterval(this.reconciler);
    this.draining = true;
    await this.reaper?.stop().catch(() => undefined);
    await this.worker?.close().catch(() => undefined);
    await this.server?.stop({ drainMs: 2000 }).catch(() => undefined);
    await this.drainClient?.close().catch(() => undefined);
    await this.directory?.dropHost(this.id).catch(() => undefined);
    await this.registry?.deregister().catch(() => undefined);
    await this.boot?.close();
  }

  /**
   * Phase-1 block job: fetch the context's ids, encode (idempotent), register the handle. A job
   * that retrying cannot fix (malformed, another model, context gone, a request at fault) fails
   * for good at once with its error record.
   */
  async processBlockJob(job: Job<BlockJobData>): Promise<{ cacheId: string; hostId: string; tokens: number; bytes: number }> {
    const final = (code: string, message: string, param: string | null = null) => failJob(new StarqError(code, message, { param }), { retry: false });
    let d: BlockJobData;
    try {
      d = validateBlockJob(job.data);
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      throw final('malformed_job', `malformed block job ${job.id}: ${e.message}`, e.param);
    }
    if (d.model !== this.cfg.modelId) throw final('unknown_model', `block job ${job.id} is for model ${d.model}; this cluster's hosts serve ${this.cfg.modelId}`, 'model');
    // Only this block's ranges (anchor ++ block; the validator keeps them within contextLength).
    let ids: Int32Array | null;
    try {
      ids = await fetchContextSegments(this.redis, this.keys, d.contextHash, d.segments, d.contextLength); // (a' + |B_k|)
    } catch (e) {
      if (e instanceof ContextLengthMismatchError) throw final('malformed_job', `block job ${job.id}: ${e.message}`, 'context');
      throw e;
    }
    if (!ids) throw final('context_expired', `context ${d.contextHash} is no longer in Redis (expired?): resubmit the request`, 'context');
    const seq = { segments: d.segments, keepFrom: d.keepFrom, length: d.segments.reduce((n, s) => n + s.end - s.start, 0) };
    let handle;
    try {
      handle = await this.encode({ cacheId: d.cacheId, ids, positions: phase1Positions(seq), keepFrom: d.keepFrom });
    } catch (e) {
      // The request itself is at fault (bad ids, too long, too large): retrying cannot help.
      if (e instanceof StarqError && e.status < 500) throw failJob(e, { retry: false });
      throw e;
    }
    const blockSeg = d.segments[d.segments.length - 1];
    const written = await this.directory.putEncoded({
      cacheId: d.cacheId,
      model: d.model,
      contextHash: d.contextHash,
      blockIndex: d.blockIndex,
      blockSize: d.blockSize,
      anchorSize: d.anchorSize,
      tokenStart: blockSeg.start,
      tokenEnd: blockSeg.end,
      layers: this.model.numLayers,
      bytes: handle.bytes,
      hostId: this.id,
    });
    const held = this.held.get(d.cacheId);
    if (held) held.handle = written;
    return handle;
  }

  private async encode(req: EncodeBlockRequest) {
    const tokens = req.ids.length - req.keepFrom;
    // The block's rows, plus its anchor's when this host does not hold that anchor yet (LocalHost
    // encodes an anchor once and keeps it until its last block is released).
    await this.makeRoom(() => (tokens + this.local.newAnchorTokens(req)) * this.bytesPerToken, req.cacheId);
    const t0 = performance.now();
    const handle = await this.local.encodeBlock(req);
    this.metrics.encoded(req.ids.length, (performance.now() - t0) / 1000);
    const prev = this.held.get(req.cacheId);
    const now = Date.now();
    this.held.set(req.cacheId, { bytes: handle.bytes, tokens: handle.tokens, lastUsed: now, createdAt: prev?.createdAt ?? now, handle: prev?.handle, input: { cacheId: req.cacheId, ids: req.ids, positions: req.positions, keepFrom: req.keepFrom } });
    await this.publishStatus();
    return handle;
  }

  private async attend(req: AttendRequest) {
    checkAttend(this.model, req, 'attend');
    this.touch(req.cacheIds);
    return this.timedAttend(() => this.local.attend(req));
  }

  /** Every item is checked and its caches found before any work: a bad item or a missing block fails the whole call. */
  private async attendMany(items: AttendRequest[]) {
    items.forEach((it, i) => checkAttend(this.model, it, `attendMany.items[${i}]`));
    for (const it of items) this.touch(it.cacheIds);
    return this.timedAttend(() => this.local.attendMany(items));
  }

  /** An attend call counted in flight and timed (starq_host_attend_seconds). */
  private async timedAttend<T>(fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    let ok = false;
    try {
      const r = await this.metrics.track('attend_call', fn);
      ok = true;
      return r;
    } finally {
      this.metrics.attended((performance.now() - t0) / 1000, ok);
    }
  }

  /** Mark blocks used now; throws `KvNotFoundError` for one not held here. */
  private touch(cacheIds: string[]): void {
    const now = Date.now();
    for (const id of cacheIds) {
      const h = this.held.get(id);
      if (!h) throw new KvNotFoundError(id, this.id);
      h.lastUsed = now;
    }
  }

  private async ringStart(a: { cacheId: string; ids: Int32Array; positions: Int32Array }): Promise<void> {
    await this.makeRoom(() => a.ids.length * this.bytesPerToken, a.cacheId);
    await this.local.ringStart(a.cacheId, a.ids, a.positions);
    this.held.set(a.cacheId, { bytes: a.ids.length * this.bytesPerToken, tokens: a.ids.length, lastUsed: Date.now(), createdAt: Date.now(), input: null });
    await this.publishStatus();
  }

  private async release(cacheIds: string[]): Promise<void> {
    const mine = cacheIds.filter((id) => this.held.delete(id));
    await this.local.release(cacheIds);
    await this.directory.remove(mine, this.id);
    await this.publishStatus();
  }

  /**
   * Evict least-recently-used blocks until `bytes()` more fit under the limit (a function: evicting
   * a block can drop an anchor the new block would have shared).
   */
  private async makeRoom(bytes: () => number, forCache: string): Promise<void> {
    if (bytes() > this.cfg.kvLimitBytes) {
      throw new StarqError('block_too_large', `block ${forCache} needs ${bytes()} bytes of KV but this host's limit is ${this.cfg.kvLimitBytes} (STARQ_KV_LIMIT_BYTES): use a smaller block size or more memory`, { param: 'block_size', status: 422 });
    }
    const used = () => [...this.held.values()].reduce((s, h) => s + h.bytes, 0) + this.local.anchorBytes;
    while (used() + bytes() > this.cfg.kvLimitBytes && this.held.size > 0) {
      const [victim] = [...this.held.entries()].sort((x, y) => x[1].lastUsed - y[1].lastUsed)[0];
      await this.release([victim]);
    }
  }

  private stats() {
    const kvBytes = [...this.held.values()].reduce((s, h) => s + h.bytes, 0) + this.local.anchorBytes; // anchors once each
    return { id: this.id, blocks: this.held.size, kvBytes, cacheIds: [...this.held.keys()] };
  }

  private async publishStatus(): Promise<void> {
    const { blocks, kvBytes } = this.stats();
    await this.registry.update({ blocks, kvBytes });
  }
}
