import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { getPriority, setPriority } from 'node:os';
import { setFlagsFromString } from 'node:v8';

/** What {@link lowerBackgroundThreadPriority} did. */
export interface ThreadPriorityResult {
  /** Threads whose nice value was raised. */
  lowered: number;
  /** The nice value they now run at. */
  nice: number;
  /** Why nothing was done: no per-thread priorities here, or already at the lowest priority. */
  skipped?: string;
  /** The kernel refused to lower a thread (worth telling the operator). */
  refused?: string;
  /** Threads put under SCHED_IDLE (when asked for). */
  idle?: number;
  /** Why SCHED_IDLE could not be set (no `chrt`, or refused); the nice value still applies. */
  idleRefused?: string;
  /** V8's young-generation collections now run on the event loop alone (see {@link lowerBackgroundThreadPriority}). */
  serialScavenge: boolean;
}

/** What to lower the background threads to. */
export interface ThreadPriorityOptions {
  /** Raise their nice value by this much (capped at 19). */
  increment: number;
  /**
   * Also put them under SCHED_IDLE (Linux): they run only on CPU time no
   * other thread wants, and a CPU running only such threads counts as idle
   * when the kernel places a thread that wakes up.
   */
  idle?: boolean;
}

/**
 * Raises the nice value of every thread of this process that exists now,
 * except the calling one (the event loop), by `increment` (capped at 19).
 *
 * Why: argon2id runs on libuv's thread pool and, during a login flood, keeps a
 * core busy for as long as it lasts. At equal priority the kernel shares the
 * cores between the hashing threads and the event loop, so every JWKS fetch and
 * refresh waits its turn behind tens of milliseconds of hashing. A lower
 * priority changes nothing while a core is free (logins hash as fast as
 * before) and gives the event loop the core as soon as it has work. What is
 * lowered: libuv's pool (argon2id, also file-system and DNS work) and V8's
 * background threads (concurrent GC and compilation, which the event loop
 * finishes itself when they lag). Threads created later by the event loop,
 * such as the signing threads, inherit its priority: they are not lowered.
 *
 * Once any thread is lowered, V8's parallel scavenge is turned off: it hands
 * parts of each young-generation collection to those background threads, and
 * the pause lasts until the last part is done, so during a login flood the
 * event loop would wait for a lowered thread to get a core. Measured under a
 * flood on PostgreSQL: the pauses' p90 went from ~2–4 ms to ~1 ms and their
 * total fell by about a third (README, Performance). Concurrent marking and compilation stay
 * on the background threads: the event loop does not wait for them.
 *
 * Linux only (a thread's nice value is its own there, set through its id);
 * elsewhere this does nothing and says so. Call it from the main thread,
 * before starting worker threads that must keep the event loop's priority.
 */
export async function lowerBackgroundThreadPriority(
  options: ThreadPriorityOptions | number,
): Promise<ThreadPriorityResult> {
  return withSerialScavenge(await lowerThreads(options));
}

/** The lowering itself: what {@link lowerBackgroundThreadPriority} did, but for the scavenge. */
async function lowerThreads(
  options: ThreadPriorityOptions | number,
): Promise<Omit<ThreadPriorityResult, 'serialScavenge'>> {
  const { increment, idle = false } = typeof options === 'number' ? { increment: options } : options;
  const base = getPriority();
  const nice = Math.min(19, base + Math.max(0, Math.floor(increment)));
  if (nice === base && !idle) return { lowered: 0, nice, skipped: `the process already runs at nice ${base}` };
  let tids: number[];
  try {
    // libuv starts its pool on the first piece of work it is given (this
    // stat): it must exist now, so that the hashing threads are among those lowered.
    await stat('/proc/self/task');
    tids = readdirSync('/proc/self/task').map(Number);
  } catch {
    return { lowered: 0, nice, skipped: 'per-thread priorities are set on Linux only' };
  }
  let lowered = 0;
  const others = tids.filter((tid) => tid !== process.pid);
  for (const tid of others) {
    try {
      if (getPriority(tid) >= nice) continue;
      setPriority(tid, nice);
      lowered += 1;
    } catch (error) {
      // A thread that ended meanwhile is fine; a refusal means none can be lowered.
      if ((error as { info?: { code?: string } }).info?.code === 'ESRCH') continue;
      const refused = `setpriority refused: ${(error as Error).message}`;
      return idle ? { lowered, nice, refused, ...scheduleIdle(others) } : { lowered, nice, refused };
    }
  }
  if (!idle) return { lowered, nice };
  return { lowered, nice, ...scheduleIdle(others) };
}

/** Turns V8's parallel scavenge off once a thread was lowered (V8 reads the flag at each scavenge). */
function withSerialScavenge(result: Omit<ThreadPriorityResult, 'serialScavenge'>): ThreadPriorityResult {
  const serialScavenge = result.lowered > 0 || (result.idle ?? 0) > 0;
  if (serialScavenge) setFlagsFromString('--no-parallel-scavenge');
  return { ...result, serialScavenge };
}

/**
 * Puts each thread under SCHED_IDLE with util-linux's `chrt` (Node has no
 * sched_setscheduler). Why, beyond a nice value: during a login flood the
 * event loop and its clients wake each other up and the kernel keeps them
 * together on one core, while a hashing thread at any nice value keeps the
 * other core to itself; a core running only SCHED_IDLE threads counts as idle
 * when a waking thread is placed, so the event loop gets it (README,
 * Performance). Once at start-up, one short process per thread.
 */
function scheduleIdle(tids: number[]): { idle: number; idleRefused?: string } {
  let idle = 0;
  let failure: string | undefined;
  for (const tid of tids) {
    try {
      execFileSync('chrt', ['--idle', '--pid', '0', String(tid)], {
        stdio: ['ignore', 'ignore', 'pipe'],
        timeout: 5_000,
      });
      idle += 1;
    } catch (error) {
      if ((error as { code?: string }).code === 'ENOENT') {
        failure = 'chrt (util-linux) is not installed';
        break;
      }
      // A thread that ended meanwhile fails too: only when none could be set is it worth telling.
      const stderr = String((error as { stderr?: Buffer }).stderr ?? '').trim();
      failure = `chrt failed: ${stderr || (error as Error).message}`;
    }
  }
  return idle === 0 && failure ? { idle, idleRefused: failure } : { idle };
}
