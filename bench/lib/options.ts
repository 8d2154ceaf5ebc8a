import os from 'node:os';

export interface BenchOptions {
  quick: boolean;
  sqliteOnly: boolean;
  /** Write V8 CPU profiles of the service to bench/results/tmp/profiles. */
  profile: boolean;
  /** Rewrite the figures between the bench markers of README.md's Performance section. */
  updateReadme: boolean;
  repetitions: number;
  /** Length of each measured run, seconds. */
  seconds: number;
  warmupSeconds: number;
  /** Stored-session counts the refresh latency is compared at. */
  sessionSizes: number[];
  /** Users registered for logins (connections take them round-robin). */
  users: number;
  connections: {
    jwks: number;
    login: number;
    refresh: number;
    /** Login connections of the flood that runs alongside the JWKS / refresh runs. */
    flood: number;
    /** The memory test: this many concurrent login connections. */
    bigFlood: number;
  };
  /** The service's HASH_CONCURRENCY default: one per core but one (at least 1). */
  hashConcurrency: number;
  /** The machine's cores: the two-core (n-core) ceilings use all of them. */
  cores: number;
  /** MALLOC_ARENA_MAX for the service, as the Docker image sets it; null leaves glibc's default. */
  mallocArenaMax: string | null;
  /** The service's HASH_THREAD_NICE (its default, 10, unless BENCH_HASH_THREAD_NICE says otherwise). */
  hashThreadNice: number;
  /** The service's HASH_THREAD_IDLE (its default, true, unless BENCH_HASH_THREAD_IDLE says otherwise). */
  hashThreadIdle: boolean;
}

const USAGE = `npm run bench [-- options]

  --quick          1 repetition of 3 s runs, 10,000 stored sessions only; results go to
                   bench/results/tmp/ (latest-quick.*), not to the committed ones
  --sqlite-only    skip PostgreSQL even when it is reachable
  --profile        write V8 CPU profiles of the service to bench/results/tmp/profiles
  --update-readme  put the new figures in README.md's Performance section

Environment: BENCH_SESSIONS (largest stored-session count, default 1000000),
BENCH_SECONDS, BENCH_REPETITIONS, BENCH_POSTGRES_URL, BENCH_MALLOC_ARENA_MAX (the
service's MALLOC_ARENA_MAX, default 2 as in the Docker image; "unset" for glibc's default),
BENCH_HASH_THREAD_NICE (the service's HASH_THREAD_NICE, default 10 as the service's own; 0 for the
event loop's nice value), BENCH_HASH_THREAD_IDLE (the service's HASH_THREAD_IDLE, default true as the
service's own).`;

function positiveInteger(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw.replaceAll('_', ''));
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer (got ${raw})`);
  return value;
}

function hashThreadIdle(): boolean {
  const raw = process.env.BENCH_HASH_THREAD_IDLE ?? 'true';
  if (raw !== 'true' && raw !== 'false') throw new Error(`BENCH_HASH_THREAD_IDLE must be true or false (got ${raw})`);
  return raw === 'true';
}

function hashThreadNice(): number {
  const raw = process.env.BENCH_HASH_THREAD_NICE ?? '10';
  if (!/^([0-9]|1[0-9])$/.test(raw)) throw new Error(`BENCH_HASH_THREAD_NICE must be 0 to 19 (got ${raw})`);
  return Number(raw);
}

function mallocArenaMax(): string | null {
  const raw = process.env.BENCH_MALLOC_ARENA_MAX ?? '2';
  if (raw === 'unset') return null;
  if (!/^[1-9][0-9]*$/.test(raw))
    throw new Error(`BENCH_MALLOC_ARENA_MAX must be a positive integer or "unset" (got ${raw})`);
  return raw;
}

export function parseOptions(argv: string[]): BenchOptions {
  const known = new Set(['--quick', '--sqlite-only', '--profile', '--update-readme', '--help', '-h']);
  for (const arg of argv) {
    if (!known.has(arg)) throw new Error(`unknown option ${arg}\n\n${USAGE}`);
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
    process.exit(0);
  }
  const quick = argv.includes('--quick');
  const largest = positiveInteger('BENCH_SESSIONS', 1_000_000);
  return {
    quick,
    sqliteOnly: argv.includes('--sqlite-only'),
    profile: argv.includes('--profile'),
    updateReadme: argv.includes('--update-readme'),
    // Five pairs, not three: on a shared machine the same process's CPU per
    // response can move by ~30 % from one 5 s run to the next, and a median of
    // three pairs can follow one such swing (README, Where this stands).
    repetitions: positiveInteger('BENCH_REPETITIONS', quick ? 1 : 5),
    seconds: positiveInteger('BENCH_SECONDS', quick ? 3 : 5),
    // V8 takes ~4 s of a saturating load to optimize the refresh path (its
    // compiler threads get what the event loop and the load generator leave).
    warmupSeconds: quick ? 2 : 5,
    sessionSizes: quick ? [10_000] : [...new Set([10_000, largest])].sort((a, b) => a - b),
    users: 16,
    connections: { jwks: 16, login: 16, refresh: 16, flood: 32, bigFlood: 200 },
    hashConcurrency: Math.max(1, os.availableParallelism() - 1),
    cores: os.availableParallelism(),
    mallocArenaMax: mallocArenaMax(),
    hashThreadNice: hashThreadNice(),
    hashThreadIdle: hashThreadIdle(),
  };
}
