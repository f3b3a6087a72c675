/**
 * On-demand installs of peer engines for benchmarks. A peer is never a dependency of the project:
 * it goes into its own folder (default `~/.cache/starq-peers/<name>`, or `$STARQ_PEERS_DIR/<name>`)
 * with `npm install --prefix <folder>`, install scripts off (nothing is built or downloaded besides
 * the registry packages named), and is loaded from there by file URL.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

export interface PeerPackage {
  /** Folder name under the peers directory. */
  name: string;
  /** Registry specs to install, e.g. `node-llama-cpp@3.22.1`. */
  packages: string[];
  /** The module to import, relative to the folder (e.g. `node_modules/node-llama-cpp/dist/index.js`). */
  entry: string;
}

export class PeerInstallError extends Error {
  constructor(peer: string, detail: string) {
    super(`could not install the ${peer} peer: ${detail}`);
    this.name = 'PeerInstallError';
  }
}

/** The folder a peer is installed into. */
export function peerDir(name: string): string {
  return path.join(process.env.STARQ_PEERS_DIR ?? path.join(os.homedir(), '.cache', 'starq-peers'), name);
}

/** Install the peer unless its entry module is present; returns the folder. */
export function ensurePeer(p: PeerPackage, log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): string {
  const dir = peerDir(p.name);
  if (fs.existsSync(path.join(dir, p.entry))) return dir;
  fs.mkdirSync(dir, { recursive: true });
  if (!fs.existsSync(path.join(dir, 'package.json'))) fs.writeFileSync(path.join(dir, 'package.json'), '{ "private": true }\n');
  const args = ['install', '--prefix', dir, '--omit=optional', '--ignore-scripts', '--no-audit', '--no-fund', ...p.packages];
  log(`[peers] npm ${args.join(' ')}`);
  try {
    execFileSync('npm', args, { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip', NODE_LLAMA_CPP_SKIP_DOWNLOAD: 'true' } });
  } catch (e) {
    throw new PeerInstallError(p.name, (e as Error).message);
  }
  if (!fs.existsSync(path.join(dir, p.entry))) throw new PeerInstallError(p.name, `${p.entry} is missing after npm install in ${dir}`);
  return dir;
}

/** Import a peer's entry module (ESM or CommonJS) from its folder. */
export async function importPeer<T>(dir: string, entry: string): Promise<T> {
  // A plain `import()` here would be compiled to `require` under CommonJS; keep it a real import.
  const dynamicImport = new Function('u', 'return import(u)') as (u: string) => Promise<T>;
  return dynamicImport(pathToFileURL(path.join(dir, entry)).href);
}
