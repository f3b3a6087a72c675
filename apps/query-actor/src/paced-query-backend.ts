/**
 * Tests only (STARQ_TEST_STEP_DELAY_MS): the engine's query backend with a pause before every
 * phase-2 step (a step starts with one `embed` of its rows), so that a test can act while a
 * generation runs whatever the machine's speed. Never used in a deployment.
 */
import { EngineQueryBackend } from '@starq/model/serving/query-backend';
import type { ModelEngine } from '@starq/model/runtime/engine';

export class PacedQueryBackend extends EngineQueryBackend {
  constructor(
    engine: ModelEngine,
    private readonly delayMs: number,
  ) {
    super(engine);
  }

  override async embed(ids: Int32Array): Promise<Float32Array> {
    await new Promise((r) => setTimeout(r, this.delayMs));
    return super.embed(ids);
  }
}
