/**
 * The admin audit log: every action taken through the admin API (drain a host, cancel a job,
 * evict a context) with who, when, what and the outcome, newest first. Kept in Redis (a capped
 * list under the cluster's prefix), so every gateway replica shows the same log.
 */
import type { Redis } from 'ioredis';

export interface AuditEntry {
  at: number;
  /** `admin key` (only the admin key may act). */
  actor: string;
  action: 'drain_host' | 'cancel_job' | 'evict_context';
  target: string;
  outcome: 'ok' | 'error';
  /** What happened (counts freed, error code and message). */
  detail: string;
  gatewayId: string;
}

export class AuditLog {
  /**
   * @param max entries kept. @defaultValue 1000
   */
  constructor(private readonly redis: Redis, private readonly prefix: string, private readonly gatewayId: string, private readonly max = 1000) {}

  private get key(): string {
    return `${this.prefix}:gw:audit`;
  }

  async record(e: Omit<AuditEntry, 'at' | 'gatewayId'>): Promise<AuditEntry> {
    const entry: AuditEntry = { at: Date.now(), gatewayId: this.gatewayId, ...e };
    await this.redis.multi().lpush(this.key, JSON.stringify(entry)).ltrim(this.key, 0, this.max - 1).exec();
    return entry;
  }

  async list(limit = 100): Promise<AuditEntry[]> {
    return (await this.redis.lrange(this.key, 0, limit - 1)).map((s) => JSON.parse(s) as AuditEntry);
  }
}
