/** Direct-link addresses (direct-link.ts): `tcp://host:port` or `unix:/absolute/path`. */
import { InvalidInputError } from '@starq/protocol';

/** A link address: `tcp://host:port` or `unix:/path/to.sock`. */
export type LinkAddress = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/**
 * Parses `tcp://host:port` (port 0 = any free port, for listening) or `unix:/absolute/path`.
 * @throws InvalidInputError (`invalid_link_address`, param `link`)
 */
export function parseLinkAddress(s: string): LinkAddress {
  const bad = (why: string): never => {
    throw new InvalidInputError('invalid_link_address', `invalid link address ${JSON.stringify(s)}: ${why}; expected tcp://host:port or unix:/absolute/path`, 'link');
  };
  if (typeof s !== 'string' || !s) return bad('empty');
  if (s.startsWith('unix:')) {
    const p = s.slice('unix:'.length);
    if (!p.startsWith('/')) bad('the socket path must be absolute');
    return { kind: 'unix', path: p };
  }
  const m = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d+)$/.exec(s);
  if (!m) return bad('not tcp://host:port');
  const port = Number(m[2]);
  if (!(port >= 0 && port <= 65535)) bad(`port ${m[2]} is out of range`);
  return { kind: 'tcp', host: m[1].replace(/^\[|\]$/g, ''), port };
}

export function formatLinkAddress(a: LinkAddress): string {
  return a.kind === 'unix' ? `unix:${a.path}` : `tcp://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

/** True when only processes on the same machine can reach the address (Unix socket, loopback). */
export function isMachineLocal(a: LinkAddress): boolean {
  return a.kind === 'unix' || a.host === 'localhost' || a.host === '::1' || a.host.startsWith('127.');
}
