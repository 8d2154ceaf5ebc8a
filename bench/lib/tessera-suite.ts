import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Ceilings } from './ceiling-suite.js';
import { type BenchUser, decodeClaims, fetchJwks, freshRefreshTokens, login, registerUsers } from './http.js';
import {
  FORM,
  type LoadOptions,
  loginBodies,
  type Measurement,
  type RunResult,
  runLoad,
  runRefreshChains,
  startLoad,
  summarize,
} from './load.js';
import type { BenchOptions } from './options.js';
import { type BenchDatabase, createPostgresDatabase, postgresInfo } from './postgres.js';
import {
  countPostgresSessions,
  countSqliteSessions,
  type SeedResult,
  seedPostgresSessions,
  seedSqliteSessions,
  sqliteFile,
} from './seed.js';
import { round, type Spread, spread } from './stats.js';
import { startTessera, type Tessera, type TesseraOptions } from './tessera.js';

export type DatabaseKind = 'sqlite' | 'postgres';

export interface ScalePoint {
  /** Rows in `sessions` when the refresh runs started. */
  sessions: number;
  seed: SeedResult | null;
  refresh: Measurement;
  /**
   * Larger sizes only: req/s at this size ÷ req/s at the smallest, per pair of
   * alternating runs (each size on a fresh tessera with its own database).
   */
  ratioToSmallest?: Spread;
}

/** Ceiling runs paired with tessera's: each tessera run is followed (or preceded) by one of its ceiling. */
export interface PairedCeilings {
  bareJwks: Measurement;
  argon2: Measurement;
  signOnly: Measurement;
}

/** tessera ÷ ceiling req/s, one ratio per pair of runs. */
export interface PairedRatios {
  jwks: Spread;
  login: Spread;
  refresh: Spread;
}

export interface DatabaseResults {
  database: DatabaseKind;
  databaseInfo: Record<string, string>;
  startupSeconds: number;
  idleRssMiB: number;
  jwks: Measurement;
  login: Measurement;
  refresh: Measurement;
  ceilings: PairedCeilings;
  pairedRatios: PairedRatios;
  jwksUnderLoginFlood: Measurement;
  refreshUnderLoginFlood: Measurement;
  /** The idle runs each flood run is paired with (the same load, no flood, right before or after it). */
  jwksBesideLoginFlood: Measurement;
  refreshBesideLoginFlood: Measurement;
  /** p99 under the flood ÷ p99 of the idle run beside it, one ratio per pair. */
  floodP99Ratios: { jwks: Spread; refresh: Spread };
  /** `bigFlood` concurrent login connections: memory stays bounded, the excess gets 503. */
  loginBigFlood: Measurement;
  scale: ScalePoint[];
  /** Lifetime peak RSS of the service (VmHWM), MiB. */
  peakRssMiB: number;
}

/** What the ceilings need from a live tessera: the JWKS bytes and the claims of a real access token. */
export interface TesseraSample {
  jwks: string;
  claims: Record<string, unknown>;
}

export interface SuiteContext {
  root: string;
  tmpDir: string;
  options: BenchOptions;
  log: (line: string) => void;
}

/** Runs `once` `repetitions` times (after an unrecorded warm-up) while watching the service's RSS. */
async function repeat(
  context: SuiteContext,
  tessera: Tessera,
  name: string,
  connections: number,
  once: (seconds: number) => Promise<RunResult & { notes?: Record<string, unknown> }>,
  { warmup = true, repetitions = context.options.repetitions } = {},
): Promise<Measurement> {
  const { options, log } = context;
  if (warmup) await once(options.warmupSeconds);
  tessera.rss.resetPhase();
  const runs: RunResult[] = [];
  const notes: Record<string, unknown>[] = [];
  for (let i = 0; i < repetitions; i += 1) {
    const { notes: runNotes, ...run } = await once(options.seconds);
    runs.push(run);
    if (runNotes) notes.push(runNotes);
    log(
      `    ${name} #${i + 1}: ${run.rps} req/s, p50 ${run.p50} ms, p99 ${run.p99} ms` +
        (run.non2xx || run.errors ? `, statuses ${JSON.stringify(run.statusCodes)}, errors ${run.errors}` : '') +
        (runNotes ? ` ${JSON.stringify(runNotes)}` : ''),
    );
  }
  const measurement = summarize(name, connections, runs);
  measurement.rssPeakMiB = round(tessera.rss.phasePeakMiB, 1);
  if (notes.length > 0) measurement.notes = { runs: notes };
  return measurement;
}

type Once = (seconds: number) => Promise<RunResult & { notes?: Record<string, unknown> }>;

interface PairOptions {
  /** The figure compared in each pair and its name in the log (default: req/s, tessera's ÷ the ceiling's). */
  ratio?: { name: string; of: (tessera: RunResult, ceiling: RunResult) => number };
  /** One unrecorded warm-up run of each side first (default true). */
  warmup?: boolean;
}

const rpsRatio = { name: 'req/s', of: (a: RunResult, b: RunResult) => (b.rps > 0 ? a.rps / b.rps : Number.NaN) };

/** What one pair of runs runs against (see `runPairs`). */
interface PairSides {
  tessera: Once;
  ceiling: Once;
  /** The tessera process's RSS sampler, its phase reset after any warm-up. */
  rss: Tessera['rss'];
  /** Called after the pair (stops processes started for it). */
  stop(): Promise<void>;
}

/**
 * Runs `options.repetitions` pairs, each against the sides `sidesFor` gives
 * it (warmed up and with the RSS phase reset), tessera first on even pairs
 * and the ceiling first on odd ones, and returns both measurements and the
 * ratio of each pair.
 */
async function runPairs(
  context: SuiteContext,
  names: [string, string],
  connections: [number, number],
  sidesFor: (pair: number) => Promise<PairSides>,
  ratioOf: { name: string; of: (tessera: RunResult, ceiling: RunResult) => number },
  { runLabel = '', measurementNotes = {} }: { runLabel?: string; measurementNotes?: Record<string, unknown> } = {},
): Promise<{ tessera: Measurement; ceiling: Measurement; ratio: Spread }> {
  const { options, log } = context;
  const tesseraRuns: RunResult[] = [];
  const ceilingRuns: RunResult[] = [];
  const ratios: number[] = [];
  const notes: Record<string, unknown>[] = [];
  let rssPeakMiB = 0;
  const describe = (name: string, i: number, run: RunResult, runNotes?: Record<string, unknown>) =>
    log(
      `    ${name} #${i + 1}${runLabel}: ${run.rps} /s, p50 ${run.p50} ms, p99 ${run.p99} ms` +
        (run.non2xx || run.errors ? `, statuses ${JSON.stringify(run.statusCodes)}, errors ${run.errors}` : '') +
        (runNotes ? ` ${JSON.stringify(runNotes)}` : ''),
    );
  for (let i = 0; i < options.repetitions; i += 1) {
    const sides = await sidesFor(i);
    try {
      const order = i % 2 === 0 ? (['tessera', 'ceiling'] as const) : (['ceiling', 'tessera'] as const);
      const pair: Partial<Record<'tessera' | 'ceiling', RunResult>> = {};
      for (const side of order) {
        const { notes: runNotes, ...run } = await sides[side](options.seconds);
        pair[side] = run;
        if (side === 'tessera' && runNotes) notes.push(runNotes);
        describe(side === 'tessera' ? names[0] : names[1], i, run, runNotes);
      }
      // One process's phase peak only grows, so over fresh processes this is the largest of theirs.
      rssPeakMiB = Math.max(rssPeakMiB, sides.rss.phasePeakMiB);
      if (pair.tessera && pair.ceiling) {
        tesseraRuns.push(pair.tessera);
        ceilingRuns.push(pair.ceiling);
        const value = ratioOf.of(pair.tessera, pair.ceiling);
        if (Number.isFinite(value)) ratios.push(value);
      }
    } finally {
      await sides.stop();
    }
  }
  const measurement = summarize(names[0], connections[0], tesseraRuns);
  measurement.rssPeakMiB = round(rssPeakMiB, 1);
  const allNotes = { ...measurementNotes, ...(notes.length > 0 ? { runs: notes } : {}) };
  if (Object.keys(allNotes).length > 0) measurement.notes = allNotes;
  const ratio = spread(ratios);
  log(
    `    ratio ${names[0]} / ${names[1]} (${ratioOf.name}): ${ratio.median.toFixed(3)} [${ratio.min.toFixed(3)}–${ratio.max.toFixed(3)}]`,
  );
  return {
    tessera: measurement,
    ceiling: summarize(names[1], connections[1], ceilingRuns),
    ratio: { median: round(ratio.median, 3), min: round(ratio.min, 3), max: round(ratio.max, 3) },
  };
}

/**
 * Alternates tessera runs with runs of their ceiling (tessera first on even
 * repetitions, the ceiling first on odd ones), after one unrecorded warm-up
 * of each unless `warmup` is false, and returns both measurements and the
 * ratio of each pair (of req/s unless `ratio` says otherwise). The "ceiling"
 * can be any reference run: the flood runs are paired with idle ones.
 */
async function paired(
  context: SuiteContext,
  tessera: Tessera,
  names: [string, string],
  connections: [number, number],
  tesseraOnce: Once,
  ceilingOnce: Once,
  { ratio: ratioOf = rpsRatio, warmup = true }: PairOptions = {},
): Promise<{ tessera: Measurement; ceiling: Measurement; ratio: Spread }> {
  const { options } = context;
  const sides: PairSides = { tessera: tesseraOnce, ceiling: ceilingOnce, rss: tessera.rss, stop: async () => {} };
  let ready = false;
  const sidesFor = async () => {
    if (!ready) {
      if (warmup) {
        await tesseraOnce(options.warmupSeconds);
        await ceilingOnce(options.warmupSeconds);
      }
      tessera.rss.resetPhase();
      ready = true;
    }
    return sides;
  };
  return runPairs(context, names, connections, sidesFor, ratioOf);
}

/** A process started for one pair of runs: its runs, its RSS sampler if it is a tessera, how to stop it. */
export interface FreshSide {
  run: Once;
  rss?: Tessera['rss'];
  stop(): Promise<void>;
}

/**
 * Like `paired` (req/s), but each pair runs against a new process of each
 * side, started for it (with its own unrecorded warm-up) and stopped after
 * it. For figures whose cost per request depends on the process itself: on
 * Node 20 a JWKS fetch's cost moves by about a third with the state V8
 * settles in a process's first seconds (README, Performance, JWKS), so pairs
 * against one process each measure one draw of that state, not the code.
 */
async function pairedFreshProcesses(
  context: SuiteContext,
  names: [string, string],
  connections: [number, number],
  startTesseraSide: (pair: number) => Promise<FreshSide & { rss: Tessera['rss'] }>,
  startCeilingSide: (pair: number) => Promise<FreshSide>,
): Promise<{ tessera: Measurement; ceiling: Measurement; ratio: Spread }> {
  const { options } = context;
  const sidesFor = async (pair: number): Promise<PairSides> => {
    const started: FreshSide[] = [];
    try {
      const tessera = await startTesseraSide(pair);
      started.push(tessera);
      const ceiling = await startCeilingSide(pair);
      started.push(ceiling);
      await tessera.run(options.warmupSeconds);
      await ceiling.run(options.warmupSeconds);
      tessera.rss.resetPhase();
      return {
        tessera: tessera.run,
        ceiling: ceiling.run,
        rss: tessera.rss,
        stop: async () => {
          await Promise.all(started.map((side) => side.stop()));
        },
      };
    } catch (error) {
      await Promise.all(started.map((side) => side.stop()));
      throw error;
    }
  };
  return runPairs(context, names, connections, sidesFor, rpsRatio, {
    runLabel: ' (new process)',
    measurementNotes: { freshProcessPerPair: true },
  });
}

/**
 * Starts a login flood (password grants on `connections` connections), waits
 * a second for the hash queue to fill, runs `measured`, then stops the flood.
 */
async function underLoginFlood(
  base: LoadOptions,
  users: BenchUser[],
  connections: number,
  measured: () => Promise<RunResult & { notes?: Record<string, unknown> }>,
): Promise<RunResult & { notes: Record<string, unknown> }> {
  // The server's CPU is shared by both loads here: no per-response figure for either.
  const { servicePid: _servicePid, ...floodBase } = base;
  const flood = startLoad({
    ...floodBase,
    path: '/oauth/token',
    method: 'POST',
    headers: FORM,
    connections,
    duration: 3600,
    setupClient: loginBodies(users),
  });
  await sleep(1000);
  let result: RunResult & { notes?: Record<string, unknown> };
  try {
    result = await measured();
  } finally {
    flood.stop();
  }
  const floodResult = await flood.done;
  // The hash that was running when the clients left still finishes (queued ones are dropped):
  // let it, so that the idle run paired with this one does not share the cores with it.
  await sleep(1000);
  const { cpuUs: _cpuUs, ...measuredResult } = result;
  return {
    ...measuredResult,
    notes: {
      ...result.notes,
      floodLoginsPerSecond: floodResult.rps,
      floodLoginP50: floodResult.p50,
      floodNon2xx: floodResult.non2xx,
    },
  };
}

/**
 * The whole tessera side of the benchmark on one database: start the built
 * service, seed users, measure JWKS, logins, refresh chains, the same under
 * a login flood, a 200-connection login flood, and refresh latency at each
 * stored-session count.
 */
export async function benchDatabase(
  context: SuiteContext,
  kind: DatabaseKind,
  ceilingsFor: (sample: TesseraSample) => Promise<Ceilings>,
): Promise<DatabaseResults> {
  const { options, log } = context;
  const dataDir = mkdtempSync(join(tmpdir(), `tessera-bench-${kind}-`));
  const postgres = kind === 'postgres' ? await createPostgresDatabase() : null;
  const databaseUrl = postgres ? postgres.url : `file:${join(dataDir, 'tessera.db')}`;
  /** A tessera with the run's settings, on `url` and `dir`, logging to `<tmp>/<logName>.log`. */
  const startInstance = (url: string, dir: string, logName: string, extra: Partial<TesseraOptions> = {}) =>
    startTessera({
      root: context.root,
      databaseUrl: url,
      dataDir: dir,
      logFile: join(context.tmpDir, `${logName}.log`),
      mallocArenaMax: options.mallocArenaMax,
      hashThreadNice: options.hashThreadNice,
      hashThreadIdle: options.hashThreadIdle,
      ...extra,
    });
  let tessera: Tessera | undefined;
  try {
    log(`\n== tessera on ${kind === 'sqlite' ? 'SQLite' : `PostgreSQL (${postgres?.name})`}`);
    const startedAt = performance.now();
    tessera = await startInstance(
      databaseUrl,
      dataDir,
      `tessera-${kind}`,
      options.profile ? { cpuProfileDir: join(context.tmpDir, 'profiles', kind) } : {},
    );
    const startupSeconds = round((performance.now() - startedAt) / 1000, 2);
    const url = tessera.url;
    log(`  ready in ${startupSeconds} s at ${url} (pid ${tessera.pid})`);
    const databaseInfo: Record<string, string> = postgres
      ? await postgresInfo(postgres.url)
      : { engine: 'sqlite (WAL, synchronous=NORMAL: the SQLITE_SYNCHRONOUS default)' };

    const users = await registerUsers(url, options.users);
    const first = users[0];
    if (!first) throw new Error('no users');
    const sample: TesseraSample = {
      jwks: await fetchJwks(url),
      claims: decodeClaims((await login(url, first)).access_token),
    };
    await sleep(500);
    const idleRssMiB = round(tessera.rss.currentMiB, 1);
    const base = { url, duration: options.seconds, connections: 1, path: '/', servicePid: tessera.pid };
    const { connections } = options;
    const live = tessera;

    const jwksRun = (seconds: number) =>
      runLoad({ ...base, path: '/.well-known/jwks.json', connections: connections.jwks, duration: seconds });
    const loginRun = (seconds: number, conns = connections.login) =>
      runLoad({
        ...base,
        path: '/oauth/token',
        method: 'POST',
        headers: FORM,
        connections: conns,
        duration: seconds,
        setupClient: loginBodies(users),
      });
    const prepareChains = () => freshRefreshTokens(url, users, connections.refresh);
    /** Refresh chains against `target` (this instance, or the stored-session twin), fresh ones per run. */
    const refreshRunOn =
      (target: { url: string; pid: number }, targetUsers: BenchUser[]) =>
      async (seconds: number, tokens?: string[]) => {
        return runRefreshChains({
          ...base,
          url: target.url,
          servicePid: target.pid,
          tokens: tokens ?? (await freshRefreshTokens(target.url, targetUsers, connections.refresh)),
          connections: connections.refresh,
          duration: seconds,
        });
      };
    const refreshRun = refreshRunOn(live, users);

    const ceilings = await ceilingsFor(sample);
    log('  JWKS, paired with bare Fastify serving the same bytes (a new process of each for every pair)');
    // A new tessera beside the live one: on PostgreSQL on the same database (several instances on one
    // database is the scale-out setup; the same key-encryption secret opens its keys), on SQLite with
    // its own file. The JWKS does not touch the database either way.
    const freshTessera = async (pair: number): Promise<FreshSide & { rss: Tessera['rss'] }> => {
      const freshDir = mkdtempSync(join(tmpdir(), `tessera-bench-${kind}-jwks-`));
      const secret = live.env.KEY_ENCRYPTION_SECRET;
      let instance: Tessera | undefined;
      const stop = async () => {
        await instance?.stop().catch((error: unknown) => log(`  could not stop a tessera: ${String(error)}`));
        rmSync(freshDir, { recursive: true, force: true });
      };
      try {
        instance = await startInstance(
          postgres ? databaseUrl : `file:${join(freshDir, 'tessera.db')}`,
          freshDir,
          `tessera-${kind}-jwks-${pair + 1}`,
          postgres && secret ? { extraEnv: { KEY_ENCRYPTION_SECRET: secret } } : {},
        );
        const target = instance;
        return {
          run: (seconds) =>
            runLoad({
              ...base,
              url: target.url,
              servicePid: target.pid,
              path: '/.well-known/jwks.json',
              connections: connections.jwks,
              duration: seconds,
            }),
          rss: target.rss,
          stop,
        };
      } catch (error) {
        await stop();
        throw error;
      }
    };
    const jwks = await pairedFreshProcesses(
      context,
      ['jwks', 'bare jwks'],
      [connections.jwks, connections.jwks],
      freshTessera,
      (pair) => ceilings.freshJwks(`bare-jwks-${kind}-${pair + 1}`),
    );
    log(`  logins (password grant), paired with raw argon2id verifies x${options.hashConcurrency}`);
    const loginPair = await paired(
      context,
      live,
      ['login', `argon2 x${options.hashConcurrency}`],
      [connections.login, options.hashConcurrency],
      (s) => loginRun(s),
      ceilings.argon2,
    );
    log('  refresh (one rotating chain per connection), paired with bare Fastify + one RS256 sign');
    const refreshPair = await paired(
      context,
      live,
      ['refresh', 'sign-only x1'],
      [connections.refresh, connections.refresh],
      (s) => refreshRun(s),
      ceilings.sign,
    );

    // Each flood run is paired with an idle run of the same load right before or after it, so the
    // p99 it is compared with comes from the same state of the machine (see README, Performance).
    const p99Ratio = { name: 'p99', of: (flood: RunResult, idle: RunResult) => flood.p99 / idle.p99 };
    log(`  JWKS under a login flood (${connections.flood} login connections), paired with idle JWKS runs`);
    const jwksFlood = await paired(
      context,
      live,
      ['jwks+flood', 'jwks idle'],
      [connections.jwks, connections.jwks],
      (s) => underLoginFlood(base, users, connections.flood, () => jwksRun(s)),
      jwksRun,
      { ratio: p99Ratio, warmup: false },
    );
    log(`  refresh under a login flood (${connections.flood} login connections), paired with idle refresh runs`);
    const refreshFlood = await paired(
      context,
      live,
      ['refresh+flood', 'refresh idle'],
      [connections.refresh, connections.refresh],
      async (s) => {
        const tokens = await prepareChains();
        return underLoginFlood(base, users, connections.flood, () => refreshRun(s, tokens));
      },
      (s) => refreshRun(s),
      { ratio: p99Ratio, warmup: false },
    );
    log(`  ${connections.bigFlood} concurrent login connections (memory)`);
    const loginBigFlood = await repeat(
      context,
      live,
      `login x${connections.bigFlood}`,
      connections.bigFlood,
      (s) => loginRun(s, connections.bigFlood),
      { warmup: false, repetitions: 1 },
    );
    // The clients are gone, but logins already queued for argon2id still run: count what completes.
    const countSessions = () =>
      postgres ? countPostgresSessions(postgres.url) : Promise.resolve(countSqliteSessions(sqliteFile(databaseUrl)));
    const atStop = await countSessions();
    let settled = atStop;
    const drainStarted = performance.now();
    for (let stable = 0; stable < 3 && performance.now() - drainStarted < 30_000; ) {
      await sleep(500);
      const now = await countSessions();
      stable = now === settled ? stable + 1 : 0;
      settled = now;
    }
    loginBigFlood.notes = {
      ...loginBigFlood.notes,
      loginsCompletedAfterClientsLeft: settled - atStop,
      drainSeconds: round((performance.now() - drainStarted) / 1000 - 1.5, 1),
    };
    log(`    ${settled - atStop} queued logins completed after the clients had gone`);

    // The stored-session comparison is paired like the ceilings: each size on a fresh tessera with its
    // own database, the smallest against each larger one, their runs alternating, so drift of the
    // machine over minutes weighs on both sides of each ratio, and neither side carries the history of
    // the runs above (the 200-connection flood's heap and arenas, the sessions its logins opened). With
    // more than two sizes the smallest's instance serves every pair, after the pairs before.
    // The run's peak RSS (VmHWM) is the main instance's: these instances' memory is not recorded.
    const seedTo = async (size: number, url: string, seedUsers: BenchUser[]) => {
      const current = postgres ? await countPostgresSessions(url) : countSqliteSessions(sqliteFile(url));
      const missing = size - current;
      if (missing <= 0) return { seed: null, current };
      // Let requests still in flight from the last run finish: on SQLite the seeding transaction holds
      // the write lock, and a write waiting for it blocks the service's event loop (busy_timeout).
      await sleep(2000);
      log(`  seeding ${missing.toLocaleString('en-US')} sessions (to ${size.toLocaleString('en-US')})`);
      const userIds = seedUsers.map((user) => user.id);
      const seed = postgres
        ? await seedPostgresSessions(url, userIds, missing)
        : seedSqliteSessions(sqliteFile(url), userIds, missing);
      seed.seconds = round(seed.seconds, 2);
      seed.sizeMiB = round(seed.sizeMiB, 1);
      log(`    ${seed.seconds} s; ${seed.total.toLocaleString('en-US')} rows, database ${seed.sizeMiB} MiB`);
      return { seed, current };
    };
    /** A fresh tessera with its own database, seeded to `size` sessions; `stop()` removes both. */
    const startSized = async (size: number) => {
      const sizedDir = mkdtempSync(join(tmpdir(), `tessera-bench-${kind}-${size}-`));
      let sizedPostgres: BenchDatabase | null = null;
      let instance: Tessera | undefined;
      const stop = async () => {
        await instance?.stop().catch((error: unknown) => log(`  could not stop a tessera: ${String(error)}`));
        const database = sizedPostgres;
        await database?.drop().catch((error: unknown) => log(`  could not drop ${database.name}: ${String(error)}`));
        rmSync(sizedDir, { recursive: true, force: true });
      };
      try {
        sizedPostgres = postgres ? await createPostgresDatabase() : null;
        const sizedUrl = sizedPostgres ? sizedPostgres.url : `file:${join(sizedDir, 'tessera.db')}`;
        log(`  a fresh tessera for ${size.toLocaleString('en-US')} stored sessions`);
        instance = await startInstance(sizedUrl, sizedDir, `tessera-${kind}-${size}`);
        const sizedUsers = await registerUsers(instance.url, options.users);
        const seeded = await seedTo(size, sizedUrl, sizedUsers);
        return {
          instance,
          run: refreshRunOn(instance, sizedUsers),
          sessions: seeded.seed?.total ?? seeded.current,
          seed: seeded.seed,
          stop,
        };
      } catch (error) {
        await stop();
        throw error;
      }
    };
    const [smallest, ...larger] = options.sessionSizes;
    if (smallest === undefined) throw new Error('no stored-session sizes');
    const scale: ScalePoint[] = [];
    const small = await startSized(smallest);
    try {
      if (larger.length === 0) {
        log(`  refresh with ${smallest.toLocaleString('en-US')} stored sessions`);
        const measurement = await repeat(
          context,
          small.instance,
          `refresh@${smallest}`,
          connections.refresh,
          small.run,
        );
        scale.push({ sessions: small.sessions, seed: small.seed, refresh: measurement });
      }
      for (const size of larger) {
        const large = await startSized(size);
        try {
          log(
            `  refresh with ${size.toLocaleString('en-US')} stored sessions, paired with ${smallest.toLocaleString('en-US')}`,
          );
          const pair = await paired(
            context,
            large.instance,
            [`refresh@${size}`, `refresh@${smallest}`],
            [connections.refresh, connections.refresh],
            large.run,
            small.run,
          );
          // The smallest size's row: its runs in the first pairing (the only one with the default two sizes).
          if (scale.length === 0) scale.push({ sessions: small.sessions, seed: small.seed, refresh: pair.ceiling });
          scale.push({
            sessions: large.sessions,
            seed: large.seed,
            refresh: pair.tessera,
            ratioToSmallest: pair.ratio,
          });
        } finally {
          await large.stop();
        }
      }
    } finally {
      await small.stop();
    }

    const peakRssMiB = round(tessera.rss.peakMiB, 1);
    return {
      database: kind,
      databaseInfo,
      startupSeconds,
      idleRssMiB,
      jwks: jwks.tessera,
      login: loginPair.tessera,
      refresh: refreshPair.tessera,
      ceilings: { bareJwks: jwks.ceiling, argon2: loginPair.ceiling, signOnly: refreshPair.ceiling },
      pairedRatios: { jwks: jwks.ratio, login: loginPair.ratio, refresh: refreshPair.ratio },
      jwksUnderLoginFlood: jwksFlood.tessera,
      refreshUnderLoginFlood: refreshFlood.tessera,
      jwksBesideLoginFlood: jwksFlood.ceiling,
      refreshBesideLoginFlood: refreshFlood.ceiling,
      floodP99Ratios: { jwks: jwksFlood.ratio, refresh: refreshFlood.ratio },
      loginBigFlood,
      scale,
      peakRssMiB,
    };
  } finally {
    await tessera?.stop();
    await postgres?.drop().catch((error: unknown) => log(`  could not drop ${postgres.name}: ${String(error)}`));
    rmSync(dataDir, { recursive: true, force: true });
  }
}
