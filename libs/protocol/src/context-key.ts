import { createHash } from 'node:crypto';

/**
 * Identity of an encoded context: the same model, attention mode family, block size, anchor size
 * and token ids always give the same key, so KV blocks encoded once can be reused by later
 * requests (docs/DESIGN.md §8.4).
 */
export interface ContextKeyParts {
  model: string;
  mode: string;
  blockSize: number;
  anchorSize: number;
  contextIds: ArrayLike<number>;
}

export function contextHash(ids: ArrayLike<number>): string {
  const buf = Buffer.from(Int32Array.from(ids as ArrayLike<number>).buffer);
  return createHash('sha256').update(buf).digest('hex').slice(0, 32);
}

export function contextKey(p: ContextKeyParts): string {
  const model = createHash('sha256').update(p.model).digest('hex').slice(0, 12);
  return `ctx:${model}:${p.mode}:b${p.blockSize}:a${p.anchorSize}:${contextHash(p.contextIds)}`;
}
