import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { argon2Run } from './argon2-ceiling.js';
import { baseEnv, type ChildServer, freePort, startChild } from './child.js';
import { type Measurement, type RunResult, runLoad, runRefreshChains, summarize } from './load.js';
import { ARGON2 } from './tessera.js';
import type { FreshSide, SuiteContext, TesseraSample } from './tessera-suite.js';

/**
 * The ceilings tessera is compared with, on the same machine with the same
 * load generator: what the JWKS, a login and a refresh could at best achieve
 * in Node doing only the work they cannot avoid. The servers stay up (idle)
 * for the whole benchmark so that each tessera run can be paired with a
 * ceiling run right after it: background load that drifts over minutes then
 * moves both figures of a pair alike, and the ratio stays meaningful. The
 * JWKS ceiling is the exception: a new process for every pair (`freshJwks`).
 */
export interface Ceilings {
  /**
   * Starts a new bare Fastify process answering the same JWKS bytes. The JWKS
   * pairs take a fresh one each (see `pairedFreshProcesses`): what a fetch
   * costs depends on how V8 optimized Node's own per-response code in that
   * process, so one process is one draw.
   */
  freshJwks(name: string): Promise<FreshSide>;
  /** argon2id verifications/s in process, no HTTP, at the service's HASH_CONCURRENCY (one per core but one). */
  argon2(seconds: number): Promise<RunResult>;
  /** The same, one at a time: the one-core figure. */
  argon2OneThread(seconds: number): Promise<RunResult>;
  /** Bare Fastify signing one RS256 JWT (jose) per form-encoded POST, one process, as tessera is. */
  sign(seconds: number): Promise<RunResult>;
  /** The same under node:cluster, one process per core: the multi-core ceiling. */
  signCluster(seconds: number): Promise<RunResult>;
  stop(): Promise<void>;
}

async function startCeilingServer(
  context: SuiteContext,
  name: string,
  env: Record<string, string>,
  workers = 1,
): Promise<ChildServer> {
  const port = await freePort();
  return startChild({
    name,
    args: ['--import', 'tsx', join(context.root, 'bench', 'servers', 'ceiling-server.ts')],
    env: { ...baseEnv(), NODE_ENV: 'production', PORT: String(port), BENCH_WORKERS: String(workers), ...env },
    cwd: context.root,
    port,
    readyPath: '/ready',
    logFile: join(context.tmpDir, `${name}.log`),
  });
}

/** Starts the ceiling servers, with the JWKS bytes and token claims of a live tessera. */
export async function startCeilings(context: SuiteContext, sample: TesseraSample): Promise<Ceilings> {
  const { options } = context;
  const { connections } = options;
  const servers: ChildServer[] = [];
  try {
    const signEnv = { BENCH_SERVER: 'sign', BENCH_CLAIMS: JSON.stringify(sample.claims) };
    const signServer = await startCeilingServer(context, 'sign-only-1', signEnv);
    servers.push(signServer);
    const clusterServer = await startCeilingServer(context, `sign-only-${options.cores}`, signEnv, options.cores);
    servers.push(clusterServer);

    const signRun = (server: ChildServer, seconds: number) => {
      // The same client work as tessera's refresh runs: each connection sends back the token it was given.
      return runRefreshChains({
        url: server.url,
        tokens: Array.from({ length: connections.refresh }, () => randomBytes(52).toString('base64url')),
        connections: connections.refresh,
        duration: seconds,
        servicePid: server.pid,
      });
    };
    return {
      async freshJwks(name) {
        const server = await startCeilingServer(context, name, { BENCH_SERVER: 'jwks', BENCH_JWKS: sample.jwks });
        return {
          run: (seconds) =>
            runLoad({
              url: server.url,
              path: '/.well-known/jwks.json',
              connections: connections.jwks,
              duration: seconds,
              servicePid: server.pid,
            }),
          stop: () => server.stop(),
        };
      },
      argon2: (seconds) => argon2Run(ARGON2, options.hashConcurrency, seconds),
      argon2OneThread: (seconds) => argon2Run(ARGON2, 1, seconds),
      sign: (seconds) => signRun(signServer, seconds),
      signCluster: (seconds) => signRun(clusterServer, seconds),
      async stop() {
        await Promise.all(servers.map((server) => server.stop()));
      },
    };
  } catch (error) {
    await Promise.all(servers.map((server) => server.stop()));
    throw error;
  }
}

/** Ceilings that are not paired with a tessera figure: the multi-core and one-thread ones. */
export interface ExtraCeilings {
  argon2OneThread: Measurement;
  signOnlyCluster: Measurement;
}

export async function benchExtraCeilings(context: SuiteContext, ceilings: Ceilings): Promise<ExtraCeilings> {
  const { options, log } = context;
  const repeatRuns = async (name: string, connections: number, once: (seconds: number) => Promise<RunResult>) => {
    await once(options.warmupSeconds);
    const runs: RunResult[] = [];
    for (let i = 0; i < options.repetitions; i += 1) {
      const run = await once(options.seconds);
      runs.push(run);
      log(`    ${name} #${i + 1}: ${run.rps} /s, p50 ${run.p50} ms, p99 ${run.p99} ms`);
    }
    return summarize(name, connections, runs);
  };
  log('\n== multi-core and one-thread ceilings');
  log(
    `  argon2id verify in process, one at a time (m=${ARGON2.memoryCost}, t=${ARGON2.timeCost}, p=${ARGON2.parallelism})`,
  );
  const argon2OneThread = await repeatRuns('argon2 x1', 1, ceilings.argon2OneThread);
  log(`  bare Fastify + jose RS256 sign under node:cluster, ${options.cores} processes`);
  const signOnlyCluster = await repeatRuns(
    `sign-only x${options.cores}`,
    options.connections.refresh,
    ceilings.signCluster,
  );
  return { argon2OneThread, signOnlyCluster };
}
