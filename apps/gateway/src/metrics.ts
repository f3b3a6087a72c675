/**
 * Prometheus metrics (`GET /metrics`). Cluster-wide values are read at each scrape: BullMQ queue
 * counts, the actor registry, and one `stats` actor call per host (before the registry is
 * serialized) whose round trip is the "exchange round trip" — the same pub/sub path as phase 2's
 * per-layer attend exchange. Job latencies are observed by this gateway when the jobs it
 * submitted finish.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ActorClient } from '@starq/actors';
import { HOST_METHODS, type ClusterRegistry, type RequestResult, type StarqClient } from '@starq/cluster';
import type { JobMeta, JobService, Terminal } from './jobs';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

export class Metrics {
  readonly registry = new Registry();
  private readonly finished: Counter<'status' | 'kind'>;
  private readonly submitted: Counter<'kind'>;
  private readonly phase1: Histogram;
  private readonly phase2: Histogram;
  private readonly firstToken: Histogram;
  private readonly tokensPerSec: Histogram;
  private readonly tokens: Counter;
  private readonly rtt: Histogram<'host'>;
  private readonly actorsGauge: Gauge<'type'>;
  private readonly kvBytes: Gauge<'host'>;
  private readonly kvBlocks: Gauge<'host'>;
  private readonly probeFailures: Gauge;
  /** Per query actor, from its serving loop's published snapshot. */
  private readonly serving: Record<'running' | 'waiting' | 'batch' | 'stepP50' | 'stepP99' | 'tokensPerSec', Gauge<'actor'>>;
  readonly http: Counter<'method' | 'status'>;

  constructor(private readonly deps: { client: StarqClient; registry: ClusterRegistry; actors: ActorClient; jobs: () => JobService }) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'starq_gateway_' });
    this.submitted = new Counter({ name: 'starq_jobs_submitted_total', help: 'Jobs submitted through this gateway', labelNames: ['kind'], registers });
    this.finished = new Counter({ name: 'starq_jobs_finished_total', help: 'Jobs submitted through this gateway that ended, by final status', labelNames: ['status', 'kind'], registers });
    this.phase1 = new Histogram({ name: 'starq_phase1_seconds', help: 'Phase 1 (submit to phase-2 start: queueing + context encoding)', buckets: LATENCY_BUCKETS, registers });
    this.phase2 = new Histogram({ name: 'starq_phase2_seconds', help: 'Phase 2 (query + generation)', buckets: LATENCY_BUCKETS, registers });
    this.firstToken = new Histogram({ name: 'starq_first_token_seconds', help: 'Phase-2 start to first generated token', buckets: LATENCY_BUCKETS, registers });
    this.tokensPerSec = new Histogram({ name: 'starq_decode_tokens_per_second', help: 'Decode speed of finished jobs', buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000], registers });
    this.tokens = new Counter({ name: 'starq_generated_tokens_total', help: 'Tokens generated for jobs of this gateway (rate() = tokens/s)', registers });
    this.http = new Counter({ name: 'starq_gateway_http_requests_total', help: 'HTTP requests answered', labelNames: ['method', 'status'], registers });

    new Gauge({
      name: 'starq_queue_jobs',
      help: 'BullMQ jobs per queue and state',
      labelNames: ['queue', 'state'],
      registers,
      async collect() {
        const c = await deps.client.queueCounts();
        this.reset();
        for (const [queue, counts] of Object.entries(c)) for (const [state, n] of Object.entries(counts)) this.set({ queue, state }, n);
      },
    });
    new Gauge({
      name: 'starq_jobs',
      help: 'Unfinished jobs submitted through this gateway, by status',
      labelNames: ['status'],
      registers,
      async collect() {
        const jobs = deps.jobs();
        const counts: Record<string, number> = { queued: 0, encoding: 0, generating: 0 };
        await Promise.all(
          [...jobs.inFlight.values()].map(async (j) => {
            if (j.started) counts.generating++;
            else {
              const p = await jobs.phase1Progress(j.meta.id).catch(() => ({ encoded: 0, running: false }));
              counts[p.encoded > 0 || p.running ? 'encoding' : 'queued']++;
            }
          }),
        );
        this.reset();
        for (const [status, n] of Object.entries(counts)) this.set({ status }, n);
      },
    });
    this.actorsGauge = new Gauge({ name: 'starq_actors', help: 'Live actors by type', labelNames: ['type'], registers });
    this.kvBytes = new Gauge({ name: 'starq_kv_bytes', help: 'KV-cache bytes held per host', labelNames: ['host'], registers });
    this.kvBlocks = new Gauge({ name: 'starq_kv_blocks', help: 'KV blocks held per host', labelNames: ['host'], registers });
    this.rtt = new Histogram({
      name: 'starq_exchange_round_trip_seconds',
      help: 'Actor-call round trip gateway → host → gateway (pub/sub, the path of the phase-2 exchange), probed at each scrape',
      labelNames: ['host'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
      registers,
    });
    const g = (name: string, help: string) => new Gauge({ name, help, labelNames: ['actor'], registers });
    this.serving = {
      running: g('starq_serving_running', 'Requests in the query actor running set (advanced together, one batched step each)'),
      waiting: g('starq_serving_waiting', 'Requests waiting for a place in the query actor running set'),
      batch: g('starq_serving_batch_size', 'Mean requests per phase-2 step over the last 10 s'),
      stepP50: g('starq_serving_step_seconds_p50', 'Median phase-2 step latency over the last 10 s'),
      stepP99: g('starq_serving_step_seconds_p99', 'p99 phase-2 step latency over the last 10 s'),
      tokensPerSec: g('starq_serving_tokens_per_second', 'Generated tokens/s of the query actor over the last 10 s'),
    };
    this.probeFailures = new Gauge({ name: 'starq_exchange_probe_failures', help: 'Hosts that did not answer the stats probe of the last scrape', registers });
  }

  jobSubmitted(meta: JobMeta): void {
    this.submitted.inc({ kind: meta.kind });
  }

  jobFinished(meta: JobMeta, t: Terminal): void {
    if (t.kind === 'done') {
      this.finished.inc({ status: 'completed', kind: meta.kind });
      this.observe(t.result);
    } else {
      this.finished.inc({ status: t.error.code === 'cancelled' ? 'cancelled' : 'failed', kind: meta.kind });
    }
  }

  private observe(r: RequestResult): void {
    this.phase1.observe(r.timings.phase1Ms / 1000);
    this.phase2.observe(r.timings.phase2Ms / 1000);
    this.firstToken.observe(r.timings.firstTokenMs / 1000);
    if (r.timings.decodeTokensPerSec > 0) this.tokensPerSec.observe(r.timings.decodeTokensPerSec);
    this.tokens.inc(r.generatedIds.length);
  }

  /** Live actors, and one `stats` call per host: KV per host and the exchange round trip. */
  private async probeCluster(): Promise<void> {
    const actors = await this.deps.registry.list();
    this.actorsGauge.reset();
    for (const t of ['host', 'query'] as const) this.actorsGauge.set({ type: t }, actors.filter((a) => a.type === t).length);
    for (const gauge of Object.values(this.serving)) gauge.reset();
    for (const q of actors) {
      const s = q.type === 'query' ? q.status.serving : undefined;
      if (!s) continue;
      const actor = { actor: q.id };
      this.serving.running.set(actor, s.running);
      this.serving.waiting.set(actor, s.waiting);
      this.serving.batch.set(actor, s.meanBatch);
      this.serving.stepP50.set(actor, s.stepMsP50 / 1000);
      this.serving.stepP99.set(actor, s.stepMsP99 / 1000);
      this.serving.tokensPerSec.set(actor, s.tokensPerSec);
    }
    this.kvBytes.reset();
    this.kvBlocks.reset();
    let failures = 0;
    await Promise.all(
      actors
        .filter((a) => a.type === 'host')
        .map(async (h) => {
          const t0 = performance.now();
          try {
            const s = await this.deps.actors.handle(h.id).call<{ kvBytes: number; blocks: number }>(HOST_METHODS.stats, undefined, { timeoutMs: 2000 });
            this.rtt.observe({ host: h.id }, (performance.now() - t0) / 1000);
            this.kvBytes.set({ host: h.id }, s.kvBytes);
            this.kvBlocks.set({ host: h.id }, s.blocks);
          } catch {
            failures++; // fall back to what the host last published in the registry
            this.kvBytes.set({ host: h.id }, h.status.kvBytes);
            this.kvBlocks.set({ host: h.id }, h.status.blocks);
          }
        }),
    );
    this.probeFailures.set(failures);
  }

  async render(): Promise<{ contentType: string; body: string }> {
    await this.probeCluster();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
