// HASH_THREAD_NICE and HASH_THREAD_IDLE: argon2id's threads run at a lower CPU
// priority than the event loop (and under SCHED_IDLE), and threads started
// later (the signing threads) do not.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { login, register, startTessera, type TesseraProcess } from './faults/helpers.js';
import { createTestDatabase, type TestDatabase } from './helpers/databases.js';

const linux = process.platform === 'linux';
const tsx = import.meta.resolve('tsx');
const moduleUrl = new URL('../src/thread-priority.ts', import.meta.url).href;
const projectRoot = new URL('..', import.meta.url).pathname;

/** Nanoseconds each thread of `pid` has run so far (/proc/<pid>/task/<tid>/schedstat). */
function cpuPerThread(pid: number | 'self'): Map<number, number> {
  const times = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      times.set(Number(tid), Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]));
    } catch {
      // the thread ended meanwhile
    }
  }
  return times;
}

/** SCHED_IDLE's number in /proc/<pid>/task/<tid>/stat (field 41, policy). */
const SCHED_IDLE = 5;

/** A thread's scheduling policy (0: SCHED_OTHER, 5: SCHED_IDLE). */
function policyOf(pid: number, tid: number): number {
  const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38]);
}

/** The thread other than `mainTid` that ran longest between the two readings. */
function busiest(before: Map<number, number>, after: Map<number, number>, mainTid: number): [number, number] {
  let best: [number, number] = [0, -1];
  for (const [tid, ns] of after) {
    const ran = ns - (before.get(tid) ?? 0);
    if (tid !== mainTid && ran > best[1]) best = [tid, ran];
  }
  return best;
}

/** Runs `source` as an ES module in a fresh Node process (with tsx) and returns what it prints. */
function childOutput(source: string, nodeArgs: string[] = []): string {
  return execFileSync(process.execPath, [...nodeArgs, '--import', tsx, '--input-type=module', '-e', source], {
    cwd: projectRoot,
    encoding: 'utf8',
  });
}

/** Runs `source` as an ES module in a fresh Node process (with tsx) and parses what it prints. */
function runInChild(source: string): Record<string, unknown> {
  return JSON.parse(childOutput(source).trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
}

/**
 * Lowers the threads with `options`, then allocates objects that survive a few
 * young-generation collections, under `--trace-gc-nvp` (whose lines go to
 * stdout in order with the child's own: a pipe is written synchronously on
 * Linux): returns, per scavenge, the milliseconds V8's background threads spent on it.
 */
function backgroundScavengeMs(options: string): number[] {
  const out = childOutput(
    `
      import { lowerBackgroundThreadPriority } from ${JSON.stringify(moduleUrl)};
      await lowerBackgroundThreadPriority(${options});
      // Only what follows counts: loading the modules took collections of its own.
      console.log('allocating');
      const kept = [];
      for (let round = 0; round < 40; round++) {
        kept.push(Array.from({ length: 200_000 }, (_, i) => ({ i, s: 'x' + i })));
        if (kept.length > 3) kept.shift();
      }
    `,
    ['--trace-gc-nvp'],
  );
  const allocating = out.slice(out.indexOf('allocating\n'));
  return [...allocating.matchAll(/gc=s .*?background\.scavenge\.parallel=([0-9.]+)/g)].map((match) => Number(match[1]));
}

describe('lowerBackgroundThreadPriority', { skip: !linux && 'per-thread priorities are Linux only' }, () => {
  const lowerAndHash = (options: string) =>
    runInChild(`
      import { readdirSync, readFileSync } from 'node:fs';
      import { getPriority } from 'node:os';
      import { Worker } from 'node:worker_threads';
      import argon2 from 'argon2';
      import { lowerBackgroundThreadPriority } from ${JSON.stringify(moduleUrl)};
      const cpu = () => new Map(readdirSync('/proc/self/task').map((tid) =>
        [Number(tid), Number(readFileSync('/proc/self/task/' + tid + '/schedstat', 'utf8').split(' ')[0])]));
      const lowered = await lowerBackgroundThreadPriority(${options});
      const before = cpu();
      await argon2.hash('a password', { type: argon2.argon2id, memoryCost: 65536, timeCost: 3, parallelism: 1 });
      const after = cpu();
      let hasher = 0, ran = -1;
      for (const [tid, ns] of after) if (tid !== process.pid && ns - (before.get(tid) ?? 0) > ran) [hasher, ran] = [tid, ns - (before.get(tid) ?? 0)];
      const worker = await new Promise((resolve) => {
        const w = new Worker("const { parentPort } = require('node:worker_threads');" +
          "const tid = Number(require('node:fs').readlinkSync('/proc/thread-self').split('/').pop());" +
          "const stat = require('node:fs').readFileSync('/proc/thread-self/stat', 'utf8');" +
          "const policy = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38]);" +
          "parentPort.postMessage({ nice: require('node:os').getPriority(tid), policy });", { eval: true, execArgv: [] });
        w.once('message', (seen) => w.terminate().then(() => resolve(seen)));
      });
      const policy = (tid) => { const s = readFileSync('/proc/self/task/' + tid + '/stat', 'utf8'); return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[38]); };
      console.log(JSON.stringify({ lowered, main: getPriority(process.pid), hasher: getPriority(hasher), ranMs: ran / 1e6, worker,
        mainPolicy: policy(process.pid), hasherPolicy: policy(hasher) }));
    `);

  it('lowers the thread argon2id runs on, not the event loop nor a thread started afterwards', () => {
    const result = lowerAndHash('7');
    assert.equal((result.lowered as { nice: number }).nice, 7);
    assert.ok((result.lowered as { lowered: number }).lowered > 0, JSON.stringify(result));
    assert.ok((result.ranMs as number) > 20, `the hashing thread ran ${result.ranMs} ms`);
    assert.equal(result.hasher, 7, 'the thread that computed argon2id');
    assert.equal(result.main, 0, 'the event loop');
    assert.deepEqual(result.worker, { nice: 0, policy: 0 }, 'a worker thread started afterwards');
    assert.equal(result.hasherPolicy, 0, 'no SCHED_IDLE unless asked for');
  });

  it('with idle, also puts the hashing thread under SCHED_IDLE, and neither the event loop nor a later thread', () => {
    const result = lowerAndHash('{ increment: 7, idle: true }');
    assert.ok(((result.lowered as { idle?: number }).idle ?? 0) > 0, JSON.stringify(result));
    assert.equal((result.lowered as { idleRefused?: string }).idleRefused, undefined);
    assert.ok((result.ranMs as number) > 20, `the hashing thread ran ${result.ranMs} ms`);
    assert.equal(result.hasherPolicy, SCHED_IDLE, 'the thread that computed argon2id');
    assert.equal(result.mainPolicy, 0, 'the event loop');
    assert.deepEqual(result.worker, { nice: 0, policy: 0 }, 'a worker thread started afterwards');
  });

  it('once it lowers threads, young-generation collections no longer wait for them', () => {
    const lowered = backgroundScavengeMs('{ increment: 7, idle: true }');
    const untouched = backgroundScavengeMs('0');
    assert.ok(lowered.length >= 10 && untouched.length >= 10, `${lowered.length} and ${untouched.length} scavenges`);
    // Without lowering, V8 shares the scavenges with its background threads (the control)...
    assert.ok(
      untouched.some((ms) => ms > 0),
      `background scavenge ms without lowering: ${untouched.join(' ')}`,
    );
    // ...and once they are lowered, the event loop does all of it.
    assert.deepEqual(
      lowered.filter((ms) => ms > 0),
      [],
    );
  });

  it('does nothing with an increment of 0', () => {
    const result = runInChild(`
      import { readdirSync } from 'node:fs';
      import { getPriority } from 'node:os';
      import { lowerBackgroundThreadPriority } from ${JSON.stringify(moduleUrl)};
      const lowered = await lowerBackgroundThreadPriority(0);
      console.log(JSON.stringify({ lowered, nices: readdirSync('/proc/self/task').map((tid) => getPriority(Number(tid))) }));
    `);
    assert.equal((result.lowered as { lowered: number }).lowered, 0);
    assert.deepEqual([...new Set(result.nices as number[])], [0]);
  });
});

describe('tessera serve with HASH_THREAD_NICE (and HASH_THREAD_IDLE by default)', {
  skip: !linux && 'per-thread priorities are Linux only',
}, () => {
  let database: TestDatabase;
  let tessera: TesseraProcess;

  before(async () => {
    database = await createTestDatabase('sqlite');
    tessera = await startTessera({
      databaseUrl: database.url,
      // argon2id costly enough that its thread stands out from everything else a login does.
      env: { HASH_THREAD_NICE: '5', ARGON2_MEMORY_COST: '65536', ARGON2_TIME_COST: '3' },
    });
  });
  after(async () => {
    await tessera?.kill();
    await database?.drop();
  });

  it('hashes at nice 5 under SCHED_IDLE while the event loop and the signing thread stay at 0', async () => {
    const pid = tessera.child.pid ?? 0;
    await register(tessera.base, 'nice-user');
    const before = cpuPerThread(pid);
    const tokens = await login(tessera.base, 'nice-user');
    const after = cpuPerThread(pid);
    assert.ok(tokens.access_token);
    const [hasher, ran] = busiest(before, after, pid);
    assert.ok(ran > 20e6, `the busiest thread ran ${ran / 1e6} ms`);
    assert.equal(getPriority(hasher), 5, 'the thread that verified the password');
    assert.equal(policyOf(pid, hasher), SCHED_IDLE, 'the thread that verified the password');
    assert.equal(getPriority(pid), 0, 'the event loop');
    assert.equal(policyOf(pid, pid), 0, 'the event loop');
    // The login signed its access token on a signing thread, started after start-up: it kept 0.
    const atZero = [...after.keys()].filter((tid) => tid !== pid && getPriority(tid) === 0 && policyOf(pid, tid) === 0);
    assert.ok(atZero.length >= 1, 'a signing thread at the event loop priority');
  });
});
