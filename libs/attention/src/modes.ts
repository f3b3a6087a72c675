/**
 * The three attention modes as block plans (docs/DESIGN.md §5):
 *   star   — blocks of b with an anchor of a (defaults b = ⌈N/4⌉, a = b, hosts = min(4, K));
 *   ring   — the same blocks without an anchor, phase 1 by Ring Attention (exact);
 *   global — one block holding the whole context on one host (exact causal attention).
 * All three share Star's phase 2. Flags that a mode cannot honour are rejected, never ignored.
 */
import { InvalidInputError } from '@starq/protocol/errors';
import { planStar, type StarPlan } from './plan';

export const MODES = ['star', 'global', 'ring'] as const;
export type Mode = (typeof MODES)[number];

export interface ModeOptions {
  blockSize?: number | null;
  anchorSize?: number | null;
  hosts?: number | null;
}

export function parseMode(mode: unknown, param = 'mode'): Mode {
  if (typeof mode !== 'string' || !(MODES as readonly string[]).includes(mode)) {
    throw new InvalidInputError('invalid_mode', `mode must be one of ${MODES.join(', ')}, got ${JSON.stringify(mode)}`, param);
  }
  return mode as Mode;
}

export function planMode(mode: Mode, contextLength: number, opts: ModeOptions = {}): StarPlan {
  const given = (k: keyof ModeOptions) => opts[k] !== undefined && opts[k] !== null;
  if (mode === 'global') {
    const bad = (['blockSize', 'anchorSize'] as const).filter(given);
    if (given('hosts') && opts.hosts !== 1) bad.push('hosts' as never);
    if (bad.length > 0) {
      const names = bad.map((k) => k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase()));
      throw new InvalidInputError('invalid_mode_option', `global mode encodes the whole context as one block on one host: drop ${names.join(', ')}`, names[0]);
    }
    return planStar({ contextLength, blockSize: Math.max(1, contextLength), anchorSize: 0, hosts: 1 });
  }
  if (mode === 'ring') {
    if (given('anchorSize') && opts.anchorSize !== 0) {
      throw new InvalidInputError('invalid_anchor_size', `ring mode has no anchor (its phase 1 is exact): drop anchor_size or set it to 0`, 'anchor_size');
    }
    return planStar({ contextLength, blockSize: opts.blockSize, anchorSize: 0, hosts: opts.hosts });
  }
  return planStar({ contextLength, blockSize: opts.blockSize, anchorSize: opts.anchorSize, hosts: opts.hosts });
}
