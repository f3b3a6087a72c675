/**
 * A private `redis-server` on a free loopback port: what `starq cluster up` starts when no Redis
 * is reachable, and what the outage test and the chaos benchmark kill and start again (same port,
 * same AOF file when it has one).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { StarqError } from '@starq/protocol';
import { freePort, waitExit } from './child-process';

export interface RedisServerOptions {
  /** @defaultValue a free port */
  port?: number;
  /** Keep an AOF (`appendfsync everysec`) in this directory; without it, no persistence at all. @defaultValue none */
  aofDir?: string;
  /** How long to wait for it to accept connections (ms). @defaultValue 15000 */
  startTimeoutMs?: number;
}

export class RedisServer {
  private proc: ChildProcess | null = null;

  private constructor(
    readonly port: number,
    private readonly o: RedisServerOptions,
  ) {}

  /** Starts redis-server and resolves once it accepts connections. @throws StarqError `redis_not_installed` without the binary. */
  static async start(o: RedisServerOptions = {}): Promise<RedisServer> {
    const s = new RedisServer(o.port ?? (await freePort()), o);
    await s.restart();
    return s;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Pid of the running server, or null while it is down. */
  get pid(): number | null {
    return this.proc?.pid ?? null;
  }

  /** Starts it (again) on the same port and AOF directory; resolves once it accepts connections. */
  async restart(): Promise<void> {
    if (this.proc) throw new StarqError('redis_running', `redis-server on port ${this.port} is already running (pid ${this.proc.pid})`);
    const persistence = this.o.aofDir ? ['--dir', this.o.aofDir, '--appendonly', 'yes', '--appendfsync', 'everysec'] : ['--appendonly', 'no'];
    const p = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
    await new Promise<void>((resolve, reject) => {
      p.once('error', (e: NodeJS.ErrnoException) =>
        reject(
          e.code === 'ENOENT'
            ? new StarqError('redis_not_installed', 'redis-server is not installed: install it (Debian: apt-get install -y redis-server) or pass --redis URL', { param: 'redis', status: 400 })
            : e,
        ),
      );
      p.once('spawn', () => resolve());
    });
    this.proc = p;
    p.once('exit', () => {
      if (this.proc === p) this.proc = null;
    });
    const deadline = Date.now() + (this.o.startTimeoutMs ?? 15000);
    while (!(await accepts(this.port))) {
      if (this.proc !== p) throw new StarqError('redis_exited', `redis-server on port ${this.port} exited while starting (port taken?)`, { status: 500 });
      if (Date.now() > deadline) throw new StarqError('redis_start_timeout', `redis-server on port ${this.port} did not accept connections within ${this.o.startTimeoutMs ?? 15000} ms`, { status: 500 });
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Sends `signal` to the server (SIGKILL: a crash, nothing flushed) and waits until it has exited. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.proc;
    if (!p) return;
    this.proc = null;
    process.kill(p.pid!, signal);
    await waitExit(p, 5000);
  }

  /** Stops it cleanly (SIGTERM; SIGKILL after 5 s). */
  async stop(): Promise<void> {
    await this.kill('SIGTERM');
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.end();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}
