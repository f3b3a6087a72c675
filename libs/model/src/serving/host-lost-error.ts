/**
 * The error a request fails with when a host it needs is lost and the serving loop cannot recover:
 * the request already used its `maxRecoveries`, its context cannot be re-encoded (Ring mode, no
 * block locator), or re-encoding failed (no live host left, or every target died too).
 */
import { StarqError } from '@starq/protocol/errors';

/** Code of {@link HostLostError}. */
export const HOST_LOST = 'host_lost';

export class HostLostError extends StarqError {
  constructor(
    readonly requestId: string,
    /** The host whose failure ended the request. */
    readonly hostId: string,
    /** Recoveries the request went through before this failure. */
    readonly recoveries: number,
    /** Every host the request lost (in the order lost). */
    readonly lostHosts: readonly string[],
    /** Why it could not recover this time. */
    readonly why: string,
    cause: unknown,
  ) {
    const what = (cause as Error)?.message ?? String(cause);
    super(
      HOST_LOST,
      `request ${requestId} lost host ${hostId} (${what}) and could not recover: ${why}; ` +
        `recoveries before: ${recoveries}; hosts lost: ${lostHosts.length > 0 ? lostHosts.join(', ') : hostId}. Resubmit it (blocks are re-encoded from the stored context)`,
      { status: 503, cause },
    );
  }
}
