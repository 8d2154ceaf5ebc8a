import type { ExtraCeilings } from './ceiling-suite.js';
import type { Measurement } from './load.js';
import type { GitInfo, MachineInfo } from './machine.js';
import type { BenchOptions } from './options.js';
import { formatMs, formatRate, formatSpread, ratio, round, type Spread, spread } from './stats.js';
import type { DatabaseKind, DatabaseResults } from './tessera-suite.js';

/** Each figure as a fraction of its ceiling: median and range of the per-pair ratios. */
export interface Ratios {
  /** tessera JWKS req/s ÷ bare Fastify serving the same bytes. */
  jwks: Spread;
  /** tessera logins/s ÷ raw argon2id verifies/s at the service's HASH_CONCURRENCY. */
  login: Spread;
  /** tessera refreshes/s ÷ a bare Fastify server signing one RS256 JWT per request (one process). */
  refresh: Spread;
  /** tessera refreshes/s (median) ÷ the same sign-only server with one process per core (median). */
  refreshVsCluster: number | null;
  /** p99 under a login flood ÷ p99 of the idle run paired with it, JWKS and refresh; absent in reports before it was paired. */
  floodP99?: { jwks: Spread; refresh: Spread };
}

export interface BenchReport {
  schema: 1;
  mode: 'full' | 'quick';
  startedAt: string;
  finishedAt: string;
  wallSeconds: number;
  machine: MachineInfo;
  git: GitInfo;
  settings: {
    repetitions: number;
    seconds: number;
    warmupSeconds: number;
    connections: BenchOptions['connections'];
    users: number;
    sessionSizes: number[];
    argon2: { memoryCost: number; timeCost: number; parallelism: number };
    hashConcurrency: number;
    /** The service's MALLOC_ARENA_MAX (null: glibc's default); absent in reports before it was set. */
    mallocArenaMax?: string | null;
    /** The service's HASH_THREAD_NICE; absent in reports before it existed (the hashing ran at the event loop's priority). */
    hashThreadNice?: number;
    /** The service's HASH_THREAD_IDLE; absent in reports before it existed (no SCHED_IDLE). */
    hashThreadIdle?: boolean;
    loadGenerator: string;
    notes: string[];
  };
  databases: DatabaseResults[];
  /** Ceilings measured once, not paired: argon2id one at a time, sign-only on every core. */
  extraCeilings: ExtraCeilings | null;
  ratios: Partial<Record<DatabaseKind, Ratios>>;
}

export function computeRatios(results: DatabaseResults, extra: ExtraCeilings | null): Ratios {
  const cluster = ratio(results.refresh.rps.median, extra?.signOnlyCluster.rps.median);
  return {
    ...results.pairedRatios,
    refreshVsCluster: cluster === null ? null : round(cluster, 3),
    floodP99: results.floodP99Ratios,
  };
}

export const DATABASE_NAMES: Record<DatabaseKind, string> = { sqlite: 'SQLite', postgres: 'PostgreSQL' };

const rate = (m: Measurement) => formatSpread(m.rps, formatRate);
const p50 = (m: Measurement) => formatSpread(m.p50, formatMs);
const p99 = (m: Measurement) => formatSpread(m.p99, formatMs);
const x = (value: number | null | undefined) => (value === null || value === undefined ? '-' : value.toFixed(2));
const ratioText = (value: Spread | undefined) =>
  value && Number.isFinite(value.median) ? formatSpread(value, (v) => v.toFixed(2)) : '-';

/** A Markdown table with padded columns, laid out as Biome formats Markdown (README.md is linted). */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((cell, column) =>
    Math.max(3, cell.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: string[]) => `| ${cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(' | ')} |`;
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

function failures(m: Measurement): string {
  const parts: string[] = [];
  if (m.failures.non2xx) parts.push(`${m.failures.non2xx.toLocaleString('en-US')} non-2xx`);
  if (m.failures.errors) parts.push(`${m.failures.errors} errors`);
  return parts.join(', ');
}

/** Every measured run of the report (tessera's and the ceilings'), by measurement name. */
function allMeasurements(report: BenchReport): Measurement[] {
  const measurements: Measurement[] = [];
  for (const db of report.databases) {
    measurements.push(
      db.jwks,
      db.login,
      db.refresh,
      db.ceilings.bareJwks,
      db.ceilings.argon2,
      db.ceilings.signOnly,
      db.jwksUnderLoginFlood,
      db.refreshUnderLoginFlood,
      db.jwksBesideLoginFlood,
      db.refreshBesideLoginFlood,
      db.loginBigFlood,
      ...db.scale.map((point) => point.refresh),
    );
  }
  if (report.extraCeilings)
    measurements.push(report.extraCeilings.argon2OneThread, report.extraCeilings.signOnlyCluster);
  return measurements;
}

/** How much CPU the host took away during the runs (steal time), when /proc told. */
function stealSentence(report: BenchReport): string {
  const steal = allMeasurements(report)
    .flatMap((measurement) => measurement.runs.map((run) => run.stealPercent))
    .filter((value): value is number => typeof value === 'number');
  if (steal.length === 0) return '';
  const { median, max } = spread(steal);
  return (
    ` Steal time (CPU the host gave to other guests while this one wanted it) over the ${steal.length} runs: ` +
    `median ${median.toFixed(1)} %, max ${max.toFixed(1)} %.`
  );
}

/** The figures as Markdown: the README's table and the console summary. */
export function markdownReport(report: BenchReport): string {
  const { machine, settings } = report;
  const extra = report.extraCeilings;
  const out: string[] = [];
  const when = report.finishedAt.slice(0, 16).replace('T', ' ');
  out.push(
    `Run of ${when} UTC (${report.mode}${report.mode === 'quick' ? ', indicative only' : ''}) on ${machine.cpuModel}, ` +
      `${machine.cores} cores, ${machine.memoryGiB} GiB, Node ${machine.node}, ${machine.os}; ` +
      `commit ${report.git.commit?.slice(0, 10) ?? 'unknown'}${report.git.dirty ? ' (+ uncommitted changes)' : ''}. ` +
      `${settings.repetitions} × ${settings.seconds} s runs per figure, median [min–max]; autocannon over loopback; ` +
      `argon2id m=${settings.argon2.memoryCost} t=${settings.argon2.timeCost} p=${settings.argon2.parallelism}, ` +
      `HASH_CONCURRENCY ${settings.hashConcurrency}, ` +
      (settings.hashThreadNice === undefined ? '' : `HASH_THREAD_NICE ${settings.hashThreadNice}, `) +
      (settings.hashThreadIdle === undefined ? '' : `HASH_THREAD_IDLE ${settings.hashThreadIdle}, `) +
      (settings.mallocArenaMax
        ? `MALLOC_ARENA_MAX=${settings.mallocArenaMax} (as the Docker image sets it). `
        : "glibc's default malloc arenas. ") +
      'Each tessera run is paired with a run of its ceiling; ' +
      'the ratio is taken per pair.' +
      stealSentence(report),
  );
  out.push('');

  const rows: string[][] = [];
  for (const db of report.databases) {
    const name = DATABASE_NAMES[db.database];
    const r = report.ratios[db.database];
    const cluster = extra
      ? ` (${machine.cores} proc. ${formatRate(extra.signOnlyCluster.rps.median)}: ${x(r?.refreshVsCluster)})`
      : '';
    rows.push([
      `JWKS (${db.jwks.connections} conn.)`,
      name,
      rate(db.jwks),
      p50(db.jwks),
      p99(db.jwks),
      `bare Fastify ${rate(db.ceilings.bareJwks)}`,
      ratioText(r?.jwks),
    ]);
    rows.push([
      `login (${db.login.connections} conn.)`,
      name,
      rate(db.login),
      p50(db.login),
      p99(db.login),
      `argon2id ×${settings.hashConcurrency} ${rate(db.ceilings.argon2)}`,
      ratioText(r?.login),
    ]);
    rows.push([
      `refresh (${db.refresh.connections} chains)`,
      name,
      rate(db.refresh),
      p50(db.refresh),
      p99(db.refresh),
      `sign-only ${rate(db.ceilings.signOnly)}`,
      `${ratioText(r?.refresh)}${cluster}`,
    ]);
  }
  out.push(table(['endpoint', 'database', 'req/s', 'p50 ms', 'p99 ms', 'ceiling /s', 'ratio'], rows));
  out.push('');

  // CPU per response: what each figure costs the server (every thread) and the load generator.
  const micros = (s: Spread | null | undefined) => (s ? formatSpread(s, formatRate) : '-');
  const cpuRows: string[][] = [];
  for (const db of report.databases) {
    const name = DATABASE_NAMES[db.database];
    const pairs: [string, Measurement, Measurement | null][] = [
      ['JWKS', db.jwks, db.ceilings.bareJwks],
      ['login', db.login, null],
      ['refresh', db.refresh, db.ceilings.signOnly],
    ];
    for (const [endpoint, measured, ceiling] of pairs) {
      if (!measured.cpuUs) continue;
      cpuRows.push([
        endpoint,
        name,
        micros(measured.cpuUs.service),
        micros(ceiling?.cpuUs?.service),
        micros(measured.cpuUs.load),
        micros(ceiling?.cpuUs?.load),
      ]);
    }
  }
  if (cpuRows.length > 0) {
    out.push(
      table(
        [
          'CPU µs per response',
          'database',
          'tessera (all threads)',
          'its ceiling',
          'load generator, tessera',
          'load generator, ceiling',
        ],
        cpuRows,
      ),
    );
    out.push('');
  }

  const ceilingRows: string[][] = [];
  for (const db of report.databases) {
    const name = DATABASE_NAMES[db.database];
    const c = db.ceilings;
    ceilingRows.push([
      `bare Fastify, same JWKS bytes (with ${name} runs)`,
      rate(c.bareJwks),
      p50(c.bareJwks),
      p99(c.bareJwks),
    ]);
    ceilingRows.push([
      `argon2id verify in process, ${settings.hashConcurrency} at once (with ${name} runs)`,
      rate(c.argon2),
      p50(c.argon2),
      p99(c.argon2),
    ]);
    ceilingRows.push([
      `Fastify + jose RS256 sign, 1 process (with ${name} runs)`,
      rate(c.signOnly),
      p50(c.signOnly),
      p99(c.signOnly),
    ]);
  }
  if (extra) {
    ceilingRows.push([
      'argon2id verify in process, 1 at once',
      rate(extra.argon2OneThread),
      p50(extra.argon2OneThread),
      p99(extra.argon2OneThread),
    ]);
    ceilingRows.push([
      `Fastify + jose RS256 sign, ${machine.cores} processes (node:cluster)`,
      rate(extra.signOnlyCluster),
      p50(extra.signOnlyCluster),
      p99(extra.signOnlyCluster),
    ]);
  }
  out.push(table(['ceiling (same machine, same load generator)', 'per second', 'p50 ms', 'p99 ms'], ceilingRows));
  out.push('');

  const floodRows: string[][] = [];
  for (const db of report.databases) {
    const name = DATABASE_NAMES[db.database];
    const floodRate = (m: Measurement) => {
      const runs = (m.notes?.runs as { floodLoginsPerSecond?: number }[] | undefined) ?? [];
      const values = runs.map((run) => run.floodLoginsPerSecond ?? Number.NaN).filter(Number.isFinite);
      return values.length ? formatRate(values.reduce((a, b) => a + b, 0) / values.length) : '-';
    };
    floodRows.push([
      'JWKS',
      name,
      p99(db.jwksBesideLoginFlood),
      p99(db.jwksUnderLoginFlood),
      ratioText(db.floodP99Ratios.jwks),
      `${rate(db.jwksBesideLoginFlood)} → ${rate(db.jwksUnderLoginFlood)}`,
      floodRate(db.jwksUnderLoginFlood),
    ]);
    floodRows.push([
      'refresh',
      name,
      p99(db.refreshBesideLoginFlood),
      p99(db.refreshUnderLoginFlood),
      ratioText(db.floodP99Ratios.refresh),
      `${rate(db.refreshBesideLoginFlood)} → ${rate(db.refreshUnderLoginFlood)}`,
      floodRate(db.refreshUnderLoginFlood),
    ]);
  }
  out.push(
    table(
      [
        `under a login flood (${settings.connections.flood} login conn.)`,
        'database',
        'p99 ms idle (paired)',
        'p99 ms flood',
        'p99 flood ÷ idle',
        'req/s idle → flood',
        'flood logins/s',
      ],
      floodRows,
    ),
  );
  out.push('');

  const scaleRows: string[][] = [];
  for (const db of report.databases) {
    for (const point of db.scale) {
      scaleRows.push([
        point.sessions.toLocaleString('en-US'),
        DATABASE_NAMES[db.database],
        rate(point.refresh),
        p50(point.refresh),
        p99(point.refresh),
        point.seed ? `${point.seed.seconds} s (${point.seed.sizeMiB} MiB db)` : '-',
        point.ratioToSmallest ? ratioText(point.ratioToSmallest) : '-',
      ]);
    }
  }
  const smallest = settings.sessionSizes[0]?.toLocaleString('en-US') ?? 'the smallest';
  out.push(
    table(
      ['stored sessions', 'database', 'refresh req/s', 'p50 ms', 'p99 ms', 'seeding', `req/s ÷ ${smallest}'s, paired`],
      scaleRows,
    ),
  );
  out.push('');

  const memoryRows = report.databases.map((db) => [
    DATABASE_NAMES[db.database],
    formatRate(db.idleRssMiB),
    formatRate(db.login.rssPeakMiB ?? Number.NaN),
    `${formatRate(db.loginBigFlood.rssPeakMiB ?? Number.NaN)} (${rate(db.loginBigFlood)} logins/s; ${failures(db.loginBigFlood) || 'no failures'}; ${String(db.loginBigFlood.notes?.loginsCompletedAfterClientsLeft ?? '?')} completed after the clients left)`,
    formatRate(db.peakRssMiB),
  ]);
  out.push(
    table(
      [
        'service RSS, MiB',
        'idle',
        `${settings.connections.login} login conn.`,
        `${settings.connections.bigFlood} login conn.`,
        'peak of the run (VmHWM)',
      ],
      memoryRows,
    ),
  );

  const problems: string[] = [];
  for (const db of report.databases) {
    for (const m of [
      db.jwks,
      db.login,
      db.refresh,
      db.jwksUnderLoginFlood,
      db.refreshUnderLoginFlood,
      db.jwksBesideLoginFlood,
      db.refreshBesideLoginFlood,
    ]) {
      const f = failures(m);
      if (f) problems.push(`${DATABASE_NAMES[db.database]} ${m.name}: ${f}`);
    }
  }
  if (problems.length) out.push('', `Failures: ${problems.join('; ')}.`);
  return out.join('\n');
}
