/** Process-wide counters from /proc/self/stat (Linux): minor page faults and CPU time. */
import * as fs from 'node:fs';
import * as os from 'node:os';

export interface ProcCounters {
  minorFaults: number;
  userMs: number;
  sysMs: number;
}

const TICK_MS = 10; // USER_HZ = 100 on Linux

export function procCounters(): ProcCounters {
  try {
    const f = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
    // fields after "(comm) ": state(0) ppid(1) ... minflt(7) cminflt(8) majflt(9) cmajflt(10) utime(11) stime(12)
    return { minorFaults: Number(f[7]), userMs: Number(f[11]) * TICK_MS, sysMs: Number(f[12]) * TICK_MS };
  } catch {
    const u = process.cpuUsage();
    return { minorFaults: NaN, userMs: u.user / 1000, sysMs: u.system / 1000 };
  }
}

export function diffCounters(a: ProcCounters, b: ProcCounters): ProcCounters {
  return { minorFaults: b.minorFaults - a.minorFaults, userMs: b.userMs - a.userMs, sysMs: b.sysMs - a.sysMs };
}

export function loadAverage(): number[] {
  return os.loadavg();
}
