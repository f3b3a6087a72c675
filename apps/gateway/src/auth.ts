/**
 * API-key authentication: `Authorization: Bearer <key>`.
 *
 * - User routes (`/v1/...`) accept any configured API key or the admin key. With no API keys
 *   configured (STARQ_API_KEYS empty) they are open.
 * - Admin routes (`/admin/...`) accept only the admin key (403 for a valid user key). With no keys
 *   at all they are open too (a local development gateway); with API keys but no admin key they
 *   are closed (403).
 * - Keys are compared in constant time on their SHA-256 digests and are never logged or stored: a
 *   job records its owner as a short fingerprint of the key.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { GatewayConfig } from './config';
import { HttpError, type Req } from './http';

export interface Principal {
  /** Fingerprint of the key ('anonymous' when auth is off); jobs are visible to their owner. */
  owner: string;
  admin: boolean;
}

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export class Authenticator {
  private readonly userDigests: Buffer[];
  private readonly adminDigest: Buffer | null;

  constructor(cfg: Pick<GatewayConfig, 'apiKeys' | 'adminKey'>) {
    this.userDigests = cfg.apiKeys.map(digest);
    this.adminDigest = cfg.adminKey ? digest(cfg.adminKey) : null;
  }

  get enabled(): boolean {
    return this.userDigests.length > 0 || this.adminDigest !== null;
  }

  /**
   * A readable name for a job owner's fingerprint (admin dashboard): `admin key`, `API key #i`
   * (its position in STARQ_API_KEYS), `anonymous`, or `retired key` for a key no longer
   * configured. Tells nothing about the key itself.
   */
  ownerLabel(owner: string): string {
    if (owner === 'anonymous') return 'anonymous';
    if (this.adminDigest && this.adminDigest.toString('hex').slice(0, 16) === owner) return 'admin key';
    const i = this.userDigests.findIndex((d) => d.toString('hex').slice(0, 16) === owner);
    return i >= 0 ? `API key #${i + 1}` : 'retired key';
  }

  /**
   * @throws HttpError 401 `missing_api_key` | `invalid_authorization` | `invalid_api_key`;
   *   403 `admin_required` on admin routes.
   */
  authenticate(req: Req, need: 'user' | 'admin'): Principal {
    const open = need === 'user' ? this.userDigests.length === 0 : !this.enabled;
    const header = req.headers.authorization;
    if (header === undefined || header === '') {
      if (open) return { owner: 'anonymous', admin: !this.enabled };
      throw new HttpError(401, 'missing_api_key', 'missing API key: send the header "Authorization: Bearer <key>"');
    }
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    if (!m) throw new HttpError(401, 'invalid_authorization', 'the Authorization header must be "Bearer <key>"');
    const d = digest(m[1]);
    const isAdmin = this.adminDigest !== null && timingSafeEqual(d, this.adminDigest);
    let isUser = false;
    for (const u of this.userDigests) isUser = timingSafeEqual(d, u) || isUser; // no early exit
    if (!isAdmin && !isUser) {
      if (open) return { owner: 'anonymous', admin: !this.enabled };
      throw new HttpError(401, 'invalid_api_key', 'the API key is not valid');
    }
    if (need === 'admin' && !isAdmin) {
      throw new HttpError(403, 'admin_required', this.adminDigest ? 'this endpoint needs the admin key' : 'admin endpoints are disabled: no admin key is configured (STARQ_ADMIN_KEY)');
    }
    return { owner: d.toString('hex').slice(0, 16), admin: isAdmin };
  }
}
