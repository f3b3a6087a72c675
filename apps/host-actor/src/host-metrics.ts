/**
 * A host actor's Prometheus metrics (served on its health port at /metrics): KV held, encode
 * throughput, attend latency, work in flight, draining. Every series carries the actor id.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const ATTEND_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const ENCODE_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export class HostMetrics {
  readonly registry = new Registry();
  private readonly encodedTokens: Counter;
  private readonly encodeSeconds: Histogram;
  private readonly encodeRate: Gauge;
  private readonly attendSeconds: Histogram<'result'>;
  private readonly inFlight: Gauge<'kind'>;
  private readonly handedOff: Counter;
  private readonly running = { block_job: 0, encode_call: 0, attend_call: 0 };

  constructor(actorId: string, state: () => { blocks: number; kvBytes: number; draining: boolean }) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ actor: actorId, role: 'host' });
    collectDefaultMetrics({ register: this.registry, prefix: 'starq_host_' });
    new Gauge({
      name: 'starq_host_kv_bytes',
      help: 'Bytes of KV cache this host holds',
      registers,
      collect() {
        this.set(state().kvBytes);
      },
    });
    new Gauge({
      name: 'starq_host_kv_blocks',
      help: 'KV blocks this host holds',
      registers,
      collect() {
        this.set(state().blocks);
      },
    });
    new Gauge({
      name: 'starq_host_draining',
      help: '1 while this host drains (takes no new work, hands its blocks to other hosts)',
      registers,
      collect() {
        this.set(state().draining ? 1 : 0);
      },
    });
    this.encodedTokens = new Counter({ name: 'starq_host_encoded_tokens_total', help: 'Context tokens encoded (rate() = encode tokens/s)', registers });
    this.encodeSeconds = new Histogram({ name: 'starq_host_encode_seconds', help: 'Time to encode one block', buckets: ENCODE_BUCKETS, registers });
    this.encodeRate = new Gauge({ name: 'starq_host_encode_tokens_per_second', help: 'Encode speed of the last block encoded', registers });
    this.attendSeconds = new Histogram({ name: 'starq_host_attend_seconds', help: 'Time to answer one attend call (one layer of phase 2 over the blocks asked for)', labelNames: ['result'], buckets: ATTEND_BUCKETS, registers });
    const running = this.running;
    this.inFlight = new Gauge({
      name: 'starq_host_jobs_in_flight',
      help: 'Work in progress on this host: block jobs, encode calls (re-encodes), attend calls on the main thread (pub/sub or STARQ_LINK_THREAD=main; not those the engine thread answers over the direct link)',
      labelNames: ['kind'],
      registers,
      collect() {
        for (const [kind, n] of Object.entries(running)) this.set({ kind }, n);
      },
    });
    this.handedOff = new Counter({ name: 'starq_host_blocks_handed_off_total', help: 'Blocks re-encoded on another host while this one drained', registers });
  }

  /** Runs `fn` counted as in flight of `kind`. */
  async track<T>(kind: keyof HostMetrics['running'], fn: () => Promise<T>): Promise<T> {
    this.running[kind]++;
    try {
      return await fn();
    } finally {
      this.running[kind]--;
    }
  }

  /** Work in flight of every kind. */
  get inFlightTotal(): number {
    return Object.values(this.running).reduce((a, b) => a + b, 0);
  }

  encoded(tokens: number, seconds: number): void {
    this.encodedTokens.inc(tokens);
    this.encodeSeconds.observe(seconds);
    if (seconds > 0) this.encodeRate.set(tokens / seconds);
  }

  attended(seconds: number, ok: boolean): void {
    this.attendSeconds.observe({ result: ok ? 'ok' : 'error' }, seconds);
  }

  handedOffBlocks(n: number): void {
    this.handedOff.inc(n);
  }
}
