/**
 * CPU time of a process (user + system, all its threads), from Linux's /proc/<pid>/stat — what a
 * benchmark reports next to wall time on a shared machine, where waiting for a core inflates wall
 * time but not CPU time.
 */
import fs from 'node:fs';

/** Clock ticks per second of /proc's time fields (USER_HZ; 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** CPU milliseconds `pid` has used so far, or null when /proc/<pid>/stat cannot be read (not Linux, process gone). */
export function processCpuMs(pid: number = process.pid): number | null {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // Fields after "(comm) ": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime …
  const f = text.slice(text.lastIndexOf(') ') + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]);
  return Number.isFinite(ticks) ? (ticks * 1000) / TICKS_PER_SECOND : null;
}
