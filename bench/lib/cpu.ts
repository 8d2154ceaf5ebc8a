import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** Kernel clock ticks per second, the unit of /proc/<pid>/stat's CPU times. */
const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

function ownCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime: fields 14 and 15 of proc(5), 12 and 13 after the name; every thread, live or ended.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/**
 * CPU seconds (user + system) a process has used so far, all its threads and
 * those of its direct children (node:cluster workers) included; null when
 * /proc cannot tell (not Linux, or the process is gone).
 */
export function processCpuSeconds(pid: number): number | null {
  try {
    let total = ownCpuSeconds(pid);
    let children: string[] = [];
    try {
      children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ').filter(Boolean);
    } catch {
      // no children list on this kernel: the process alone
    }
    for (const child of children) {
      try {
        total += ownCpuSeconds(Number(child));
      } catch {
        // a child that ended meanwhile
      }
    }
    return total;
  } catch {
    return null;
  }
}

/** CPU seconds the benchmark's own process (the load generator) has used so far. */
export function ownProcessCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

/** The machine's CPU time so far, in clock ticks: all of it, and the part the hypervisor gave elsewhere (steal). */
export function machineCpuTicks(): { total: number; steal: number } | null {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]?.trim().split(/\s+/).slice(1).map(Number);
    // proc(5): user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user.
    if (!fields || fields.length < 8 || fields.some(Number.isNaN)) return null;
    const total = fields.slice(0, 8).reduce((sum, value) => sum + value, 0);
    return { total, steal: fields[7] ?? 0 };
  } catch {
    return null;
  }
}

/** Steal time between two readings, as a percentage of the machine's CPU time (null when /proc cannot tell). */
export function stealPercent(
  start: { total: number; steal: number } | null,
  end: { total: number; steal: number } | null,
): number | null {
  if (!start || !end || end.total <= start.total) return null;
  return (100 * (end.steal - start.steal)) / (end.total - start.total);
}
