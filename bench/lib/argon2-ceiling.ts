import { createHistogram } from 'node:perf_hooks';
import argon2 from 'argon2';
import type { RunResult } from './load.js';
import { round } from './stats.js';

export interface Argon2Parameters {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

/**
 * Raw argon2id verifications per second, in process, no HTTP: `concurrency`
 * verifications kept in flight (on libuv's thread pool, as the service runs
 * them) for `seconds`. This is the ceiling of password logins.
 */
export async function argon2Run(
  parameters: Argon2Parameters,
  concurrency: number,
  seconds: number,
): Promise<RunResult> {
  const password = 'correct horse battery staple, benchmark edition';
  const hash = await argon2.hash(password, { type: argon2.argon2id, ...parameters });
  const histogram = createHistogram({ lowest: 1, highest: 120_000_000, figures: 3 });
  const started = performance.now();
  const end = started + seconds * 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        if (!(await argon2.verify(hash, password))) throw new Error('argon2 verify failed');
        histogram.record(Math.max(1, Math.round((performance.now() - t0) * 1000)));
        done += 1;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  return {
    rps: round(done / elapsed, 1),
    p50: round(histogram.percentile(50) / 1000, 3),
    p99: round(histogram.percentile(99) / 1000, 3),
    max: round(histogram.max / 1000, 3),
    ok: done,
    non2xx: 0,
    errors: 0,
    timeouts: 0,
    statusCodes: {},
    seconds: round(elapsed, 2),
  };
}
