/**
 * Intervals that third-party code starts and stops by itself can outlive a test file: ioredis's
 * reply parser (redis-parser), after parsing a reply larger than a socket read, shrinks its shared
 * buffer pool on a 50 ms interval until the pool is small again — seconds after a multi-MiB reply.
 * Jest then reports that interval as an open handle of the file. A spec that moves large replies
 * calls {@link watchIntervals} before it starts and awaits `settled()` last.
 */
import { createHook } from 'node:async_hooks';

interface TimerLike {
  _repeat: number | null;
  _destroyed: boolean;
  hasRef(): boolean;
}

export interface IntervalWatch {
  /** Intervals started since the watch began that still run (and keep the process alive). */
  running(): number;
  /**
   * Resolves once {@link running} is 0, checking every 50 ms, or after `timeoutMs` whatever the
   * count (it never fails a test); then stops watching.
   * @param timeoutMs - @defaultValue 30000
   */
  settled(timeoutMs?: number): Promise<void>;
}

/** Watch the intervals (setInterval) started from now on, by anyone in this process. */
export function watchIntervals(): IntervalWatch {
  const started: TimerLike[] = [];
  const hook = createHook({
    init(_id, type, _trigger, resource) {
      if (type === 'Timeout' && (resource as TimerLike)._repeat !== null) started.push(resource as TimerLike);
    },
  }).enable();
  const running = () => started.filter((t) => !t._destroyed && t.hasRef()).length;
  return {
    running,
    async settled(timeoutMs = 30000) {
      const deadline = Date.now() + timeoutMs;
      while (running() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      hook.disable();
      started.length = 0;
    },
  };
}
