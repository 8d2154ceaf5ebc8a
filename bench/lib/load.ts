import { createHistogram } from 'node:perf_hooks';
import autocannon from 'autocannon';
import { machineCpuTicks, ownProcessCpuSeconds, processCpuSeconds, stealPercent } from './cpu.js';
import { round, type Spread, spread } from './stats.js';

export const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

/** One bounded autocannon run. */
export interface LoadOptions {
  /** Base URL of the server, e.g. http://127.0.0.1:3000 */
  url: string;
  path: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  connections: number;
  /** Seconds (autocannon stops on a whole second). */
  duration: number;
  /** Per-connection set-up: a body per connection, or a stateful request chain. */
  setupClient?: (client: autocannon.Client) => void;
  /** The server's process: its CPU time per response is measured (see {@link RunResult.cpuUs}). */
  servicePid?: number;
}

/** What one run measured. Latencies are of 2xx responses only, in milliseconds. */
export interface RunResult {
  /** 2xx responses per second. */
  rps: number;
  p50: number;
  p99: number;
  max: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  seconds: number;
  /**
   * CPU microseconds per 2xx response over the run: of the server's process
   * (every thread; null when not measured) and of the load generator (the
   * benchmark's own process, which runs autocannon).
   */
  cpuUs?: { service: number | null; load: number };
  /**
   * Steal time over the run: the percentage of the machine's CPU time its
   * hypervisor gave to other guests while this one wanted to run (null where
   * /proc cannot tell). A few percent is normal on a shared host; more means
   * the figures of that run are low.
   */
  stealPercent?: number | null;
}

/** A running load: resolves when it ends; `stop()` ends it at the next whole second. */
export interface RunningLoad {
  done: Promise<RunResult>;
  stop(): void;
}

/**
 * Starts autocannon. Latencies are recorded from autocannon's per-response
 * timings (high-resolution, in microseconds) rather than from its own
 * histogram, which keeps whole milliseconds only — too coarse for a JWKS
 * served in a fraction of one.
 */
export function startLoad(options: LoadOptions): RunningLoad {
  const histogram = createHistogram({ lowest: 1, highest: 120_000_000, figures: 3 });
  let ok = 0;
  let instance: autocannon.Instance | undefined;
  const serviceCpuAtStart = options.servicePid === undefined ? null : processCpuSeconds(options.servicePid);
  const loadCpuAtStart = ownProcessCpuSeconds();
  const machineAtStart = machineCpuTicks();
  const done = new Promise<RunResult>((resolve, reject) => {
    instance = autocannon(
      {
        url: `${options.url}${options.path}`,
        method: options.method ?? 'GET',
        headers: options.headers ?? {},
        ...(options.body !== undefined ? { body: options.body } : {}),
        connections: options.connections,
        duration: options.duration,
        timeout: 30,
        ...(options.setupClient ? { setupClient: options.setupClient } : {}),
      },
      (error, result) => {
        if (error) return reject(error);
        const seconds = result.duration;
        const statusCodes: Record<string, number> = {};
        for (const [code, { count }] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = count;
        const measured = histogram.count > 0;
        const serviceCpuAtEnd = options.servicePid === undefined ? null : processCpuSeconds(options.servicePid);
        const perResponse = (seconds: number) => (ok > 0 ? round((seconds * 1e6) / ok, 1) : Number.NaN);
        resolve({
          rps: round(ok / seconds, 1),
          p50: measured ? round(histogram.percentile(50) / 1000, 3) : Number.NaN,
          p99: measured ? round(histogram.percentile(99) / 1000, 3) : Number.NaN,
          max: measured ? round(histogram.max / 1000, 3) : Number.NaN,
          ok,
          non2xx: result.non2xx,
          errors: result.errors,
          timeouts: result.timeouts,
          statusCodes,
          seconds,
          cpuUs: {
            service:
              serviceCpuAtStart === null || serviceCpuAtEnd === null
                ? null
                : perResponse(serviceCpuAtEnd - serviceCpuAtStart),
            load: perResponse(ownProcessCpuSeconds() - loadCpuAtStart),
          },
          stealPercent: roundOrNull(stealPercent(machineAtStart, machineCpuTicks())),
        });
      },
    );
    instance.on('response', (_client, status, _bytes, ms) => {
      if (status >= 200 && status < 300) {
        ok += 1;
        histogram.record(Math.max(1, Math.round(ms * 1000)));
      }
    });
  });
  return {
    done,
    stop: () => instance?.stop(),
  };
}

function roundOrNull(value: number | null): number | null {
  return value === null ? null : round(value, 1);
}

export function runLoad(options: LoadOptions): Promise<RunResult> {
  return startLoad(options).done;
}

/** A figure measured over several runs: every run, and the median and range of each figure. */
export interface Measurement {
  name: string;
  connections: number;
  seconds: number;
  runs: RunResult[];
  rps: Spread;
  p50: Spread;
  p99: Spread;
  /** Responses that were not 2xx, connection errors and timeouts, over all runs. */
  failures: { non2xx: number; errors: number; timeouts: number };
  /** CPU µs per 2xx response: of the server's process (null: not measured) and of the load generator. */
  cpuUs?: { service: Spread | null; load: Spread };
  /** Steal time over each run, percent (see {@link RunResult.stealPercent}); absent when not measured. */
  stealPercent?: Spread;
  /** Peak RSS of the service during the runs, MiB (when a service is watched). */
  rssPeakMiB?: number;
  /** Free-form context (e.g. the concurrent flood's own figures). */
  notes?: Record<string, unknown>;
}

export function summarize(name: string, connections: number, runs: RunResult[]): Measurement {
  const cpu = runs.map((run) => run.cpuUs).filter((value) => value !== undefined);
  const service = cpu.map((value) => value.service).filter((value): value is number => value !== null);
  const steal = runs.map((run) => run.stealPercent).filter((value): value is number => typeof value === 'number');
  return {
    ...(steal.length > 0 ? { stealPercent: spread(steal) } : {}),
    ...(cpu.length > 0
      ? {
          cpuUs: {
            service: service.length > 0 ? spread(service) : null,
            load: spread(cpu.map((value) => value.load)),
          },
        }
      : {}),
    name,
    connections,
    seconds: runs[0]?.seconds ?? 0,
    runs,
    rps: spread(runs.map((run) => run.rps)),
    p50: spread(runs.map((run) => run.p50)),
    p99: spread(runs.map((run) => run.p99)),
    failures: {
      non2xx: runs.reduce((sum, run) => sum + run.non2xx, 0),
      errors: runs.reduce((sum, run) => sum + run.errors, 0),
      timeouts: runs.reduce((sum, run) => sum + run.timeouts, 0),
    },
  };
}

/**
 * Per-connection refresh-token chains: connection i starts from tokens[i] and
 * every request sends the refresh token the previous response of that same
 * connection returned. autocannon resets its per-request `context` after each
 * pass over the request list, so the chain lives in a closure installed per
 * connection through `setupClient`.
 */
export function refreshChains(
  tokens: string[],
  path = '/oauth/token',
): { setupClient: (client: autocannon.Client) => void; broken: () => number } {
  let next = 0;
  let broken = 0;
  return {
    broken: () => broken,
    setupClient(client) {
      const token = tokens[next];
      next += 1;
      if (token === undefined) throw new Error('more connections than refresh-token chains');
      const chain = { token, alive: true };
      client.setRequests([
        {
          method: 'POST',
          path,
          headers: FORM,
          setupRequest: (request) => ({
            ...request,
            body: `grant_type=refresh_token&refresh_token=${encodeURIComponent(chain.token)}`,
          }),
          onResponse: (status, body) => {
            if (status === 200) {
              chain.token = (JSON.parse(body) as { refresh_token: string }).refresh_token;
            } else if (status >= 400 && status < 500 && status !== 429 && chain.alive) {
              // invalid_grant: the chain is dead (a 503 or 429 leaves the token unused and valid).
              chain.alive = false;
              broken += 1;
            }
          },
        },
      ]);
    },
  };
}

/**
 * A refresh load: POST /oauth/token on `connections` connections, connection i
 * keeping the chain that starts at tokens[i] (see {@link refreshChains}). The
 * same client work for tessera and for its sign-only ceiling; the notes say how
 * many chains broke (a refused token ends its chain).
 */
export async function runRefreshChains(
  options: Omit<LoadOptions, 'path' | 'method' | 'headers' | 'body' | 'setupClient'> & { tokens: string[] },
): Promise<RunResult & { notes?: Record<string, unknown> }> {
  const { tokens, ...load } = options;
  const chains = refreshChains(tokens);
  const result = await runLoad({
    ...load,
    path: '/oauth/token',
    method: 'POST',
    headers: FORM,
    setupClient: chains.setupClient,
  });
  return { ...result, ...(chains.broken() > 0 ? { notes: { brokenChains: chains.broken() } } : {}) };
}

/** Password-grant bodies, one user per connection (round-robin). */
export function loginBodies(users: { username: string; password: string }[]): (client: autocannon.Client) => void {
  let next = 0;
  return (client) => {
    const user = users[next % users.length];
    next += 1;
    if (!user) throw new Error('no users to log in');
    client.setBody(
      `grant_type=password&username=${encodeURIComponent(user.username)}&password=${encodeURIComponent(user.password)}`,
    );
  };
}
