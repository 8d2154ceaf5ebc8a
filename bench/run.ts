// npm run bench: tessera's throughput and latency against the machine's own
// ceilings. Builds nothing itself (the npm script runs `npm run build` first);
// starts the built service as a child process on SQLite, then on PostgreSQL
// when it is reachable, drives it with autocannon over loopback, measures the
// ceilings with the same load generator, and writes bench/results/.
// See README.md, "Performance".
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchExtraCeilings, type Ceilings, type ExtraCeilings, startCeilings } from './lib/ceiling-suite.js';
import { renderChart } from './lib/chart.js';
import { killAllChildren } from './lib/child.js';
import { gitInfo, machineInfo } from './lib/machine.js';
import { parseOptions } from './lib/options.js';
import { postgresReachable } from './lib/postgres.js';
import { type BenchReport, computeRatios, markdownReport, type Ratios } from './lib/report.js';
import { round } from './lib/stats.js';
import { ARGON2 } from './lib/tessera.js';
import {
  benchDatabase,
  type DatabaseKind,
  type DatabaseResults,
  type SuiteContext,
  type TesseraSample,
} from './lib/tessera-suite.js';

const README_START = '<!-- bench:results:start -->';
const README_END = '<!-- bench:results:end -->';

async function main(): Promise<void> {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const options = parseOptions(process.argv.slice(2));
  const resultsDir = join(root, 'bench', 'results');
  const tmpDir = join(resultsDir, 'tmp');
  rmSync(tmpDir, { recursive: true, force: true });
  mkdirSync(tmpDir, { recursive: true });
  const started = new Date();
  const log = (line: string) => console.log(line);
  const context: SuiteContext = { root, tmpDir, options, log };

  let interrupted = false;
  process.on('SIGINT', () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.error('\ninterrupted: stopping the servers and cleaning up (Ctrl-C again to quit at once)');
    killAllChildren();
  });

  const kinds: DatabaseKind[] = ['sqlite'];
  if (!options.sqliteOnly) {
    if (await postgresReachable()) kinds.push('postgres');
    else log('PostgreSQL is not reachable: SQLite only.');
  }
  const machine = machineInfo();
  log(
    `tessera benchmark (${options.quick ? 'quick' : 'full'}): ${machine.cpuModel}, ${machine.cores} cores, ` +
      `${machine.memoryGiB} GiB, Node ${machine.node}; ${kinds.join(' + ')}; ` +
      `${options.repetitions} × ${options.seconds} s runs; sessions ${options.sessionSizes.join(', ')}`,
  );

  const databases: DatabaseResults[] = [];
  let ceilings: Ceilings | null = null;
  let extraCeilings: ExtraCeilings | null = null;
  // Started with the JWKS bytes and token claims of the first tessera, then kept (idle) to the end.
  const ceilingsFor = async (sample: TesseraSample): Promise<Ceilings> => {
    ceilings ??= await startCeilings(context, sample);
    return ceilings;
  };
  try {
    for (const kind of kinds) databases.push(await benchDatabase(context, kind, ceilingsFor));
    if (ceilings) extraCeilings = await benchExtraCeilings(context, ceilings);
  } finally {
    await (ceilings as Ceilings | null)?.stop();
  }

  const finished = new Date();
  const ratios: Partial<Record<DatabaseKind, Ratios>> = {};
  for (const db of databases) ratios[db.database] = computeRatios(db, extraCeilings);
  const report: BenchReport = {
    schema: 1,
    mode: options.quick ? 'quick' : 'full',
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    wallSeconds: round((finished.getTime() - started.getTime()) / 1000, 1),
    machine,
    git: gitInfo(root),
    settings: {
      repetitions: options.repetitions,
      seconds: options.seconds,
      warmupSeconds: options.warmupSeconds,
      connections: options.connections,
      users: options.users,
      sessionSizes: options.sessionSizes,
      argon2: { ...ARGON2 },
      hashConcurrency: options.hashConcurrency,
      mallocArenaMax: options.mallocArenaMax,
      hashThreadNice: options.hashThreadNice,
      hashThreadIdle: options.hashThreadIdle,
      loadGenerator: 'autocannon 9 (programmatic, one process, same machine, loopback)',
      notes: [
        'req/s counts 2xx responses only; latencies are of 2xx responses, from autocannon per-response timings (µs resolution)',
        'each refresh connection keeps its own rotating chain (the token from its previous response)',
        'login flood: password grants on the flood connections, started 1 s before the measured run',
        'each tessera run is paired with a run of its ceiling (alternating which goes first); the ratio is per pair',
        'each run under a login flood is paired the same way with a run of the same load without it; its p99 is compared per pair',
        'the one-thread argon2id and multi-process sign-only ceilings run last, with no tessera alive',
      ],
    },
    databases,
    extraCeilings,
    ratios,
  };

  const stamp = started
    .toISOString()
    .replace(/\.\d+Z$/, 'Z')
    .replaceAll(':', '-');
  const json = `${JSON.stringify(report, null, 2)}\n`;
  const markdown = markdownReport(report);
  // A quick run is a smoke test: its figures stay out of the committed results (and out of the README).
  const outDir = options.quick ? tmpDir : resultsDir;
  const suffix = options.quick ? '-quick' : '';
  const written = [`${stamp}${suffix}.json`, `latest${suffix}.json`, `latest${suffix}.svg`, `latest${suffix}.md`];
  writeFileSync(join(outDir, written[0] as string), json);
  writeFileSync(join(outDir, written[1] as string), json);
  writeFileSync(join(outDir, written[2] as string), renderChart(report));
  writeFileSync(join(outDir, written[3] as string), `${markdown}\n`);
  log(`\n${markdown}\n`);
  log(`wrote ${written.map((name) => relative(root, join(outDir, name))).join(', ')}`);

  if (options.updateReadme && options.quick) {
    log('--update-readme ignored: the README shows full runs only');
  } else if (options.updateReadme) {
    const readmePath = join(root, 'README.md');
    const readme = readFileSync(readmePath, 'utf8');
    const start = readme.indexOf(README_START);
    const end = readme.indexOf(README_END);
    if (start === -1 || end < start) {
      log(`README.md has no ${README_START} … ${README_END} markers: not updated`);
    } else {
      writeFileSync(readmePath, `${readme.slice(0, start + README_START.length)}\n${markdown}\n${readme.slice(end)}`);
      log('updated the figures in README.md (Performance)');
    }
  }
  log(`done in ${Math.round(report.wallSeconds)} s`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    killAllChildren();
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exit(1);
  },
);
