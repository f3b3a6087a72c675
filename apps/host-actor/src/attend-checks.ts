/** Checks of attend calls against the host's model, shared by the main thread and the link thread (link-worker.ts). */
import type { AttendRequest } from '@starq/attention';
import { ProtocolError } from '@starq/protocol';

/** The model dimensions an attend call is checked against. */
export interface AttendShape {
  numLayers: number;
  numHeads: number;
  headDim: number;
}

/** The wire checked the types; this checks them against the model (layer in range, q of H·Tq·D). */
export function checkAttend(model: AttendShape, req: AttendRequest, name: string): void {
  const { numLayers, numHeads, headDim } = model;
  if (req.layer >= numLayers) throw new ProtocolError(`${name}.layer (${req.layer}) must be < the model's ${numLayers} layers`, { param: `${name}.layer` });
  const want = numHeads * req.qpos.length * headDim;
  if (req.q.length !== want) {
    throw new ProtocolError(`${name}.q has ${req.q.length} elements but heads*rows*headDim (${numHeads}*${req.qpos.length}*${headDim}) = ${want}`, { param: `${name}.q` });
  }
}
