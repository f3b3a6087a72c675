/**
 * A query actor's Prometheus metrics (served on its health port at /metrics): requests in flight,
 * phase-2 step latency (one token: every layer's attend exchange with the hosts, merge, post),
 * tokens generated, requests handed back while draining. Every series carries the actor id.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class QueryMetrics {
  readonly registry = new Registry();
  private readonly steps: Histogram;
  private readonly batch: Histogram;
  private readonly tokens: Counter;
  private readonly handedBack: Counter;
  private readonly recoveries: Counter;

  constructor(actorId: string, state: () => { active: number; draining: boolean }) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ actor: actorId, role: 'query' });
    collectDefaultMetrics({ register: this.registry, prefix: 'starq_query_' });
    new Gauge({
      name: 'starq_query_jobs_in_flight',
      help: 'Requests this query actor is running',
      registers,
      collect() {
        this.set(state().active);
      },
    });
    new Gauge({
      name: 'starq_query_draining',
      help: '1 while this query actor drains (takes no new requests)',
      registers,
      collect() {
        this.set(state().draining ? 1 : 0);
      },
    });
    this.steps = new Histogram({
      name: 'starq_query_step_seconds',
      help: 'One phase-2 step of the running set (every request: a query chunk or one generated token): every layer attended on the hosts and merged',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.batch = new Histogram({
      name: 'starq_query_step_batch_size',
      help: 'Requests advanced together by one phase-2 step (the serving loop running set)',
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers,
    });
    this.tokens = new Counter({ name: 'starq_query_generated_tokens_total', help: 'Tokens generated (rate() = tokens/s)', registers });
    this.handedBack = new Counter({ name: 'starq_query_requests_handed_back_total', help: 'Requests moved back to the queue because the drain timeout ran out', registers });
    this.recoveries = new Counter({ name: 'starq_query_step_recoveries_total', help: 'Steps retried after a host failed or moved its blocks', registers });
  }

  /** One step of the running set: its latency and how many requests it advanced. */
  step(seconds: number, batch: number): void {
    this.steps.observe(seconds);
    this.batch.observe(batch);
  }

  token(): void {
    this.tokens.inc();
  }

  handBack(): void {
    this.handedBack.inc();
  }

  recovered(): void {
    this.recoveries.inc();
  }
}
