import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { baseEnv, type ChildServer, freePort, startChild } from './child.js';
import { RssSampler } from './rss.js';

/** argon2id parameters the service runs with: the OWASP defaults tessera ships. */
export const ARGON2 = { memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export interface TesseraOptions {
  root: string;
  databaseUrl: string;
  /** DATA_DIR and working directory of the child (so no stray .env is read). */
  dataDir: string;
  logFile: string;
  /** Write a V8 CPU profile of the service here (node --cpu-prof). */
  cpuProfileDir?: string;
  /** MALLOC_ARENA_MAX in the service's environment (glibc reads it at start); null for the default. */
  mallocArenaMax: string | null;
  /** HASH_THREAD_NICE of the service. */
  hashThreadNice: number;
  /** HASH_THREAD_IDLE of the service. */
  hashThreadIdle: boolean;
  /** More environment for the service (for A/B runs of a setting), applied last. */
  extraEnv?: Record<string, string>;
}

export interface Tessera extends ChildServer {
  rss: RssSampler;
  env: Record<string, string>;
}

/**
 * Starts the BUILT service (`node bin/tessera.js serve`, from dist/) as a
 * child process in production mode, with rate limits and login throttling
 * out of the way of a load generator on one IP, and waits for /readyz.
 */
export async function startTessera(options: TesseraOptions): Promise<Tessera> {
  const bin = join(options.root, 'bin', 'tessera.js');
  if (!existsSync(join(options.root, 'dist', 'src', 'cli.js'))) {
    throw new Error('dist/ is missing: run `npm run build` first (npm run bench does)');
  }
  mkdirSync(options.dataDir, { recursive: true });
  const port = await freePort();
  const env: Record<string, string> = {
    ...baseEnv(),
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    PORT: String(port),
    ISSUER: `http://127.0.0.1:${port}`,
    DATABASE_URL: options.databaseUrl,
    DATA_DIR: options.dataDir,
    KEY_ENCRYPTION_SECRET: randomBytes(48).toString('base64url'),
    LOG_LEVEL: 'warn',
    // One client IP drives everything: per-IP limits would throttle the load generator.
    RATE_LIMIT_TOKEN: '0',
    RATE_LIMIT_REGISTER: '0',
    RATE_LIMIT_PASSWORD: '0',
    LOGIN_FREE_ATTEMPTS: '1000000000',
    LOGIN_FREE_ATTEMPTS_ACCOUNT: '1000000000',
    ARGON2_MEMORY_COST: String(ARGON2.memoryCost),
    ARGON2_TIME_COST: String(ARGON2.timeCost),
    ARGON2_PARALLELISM: String(ARGON2.parallelism),
    HASH_THREAD_NICE: String(options.hashThreadNice),
    HASH_THREAD_IDLE: String(options.hashThreadIdle),
    ...(options.mallocArenaMax === null ? {} : { MALLOC_ARENA_MAX: options.mallocArenaMax }),
    ...options.extraEnv,
  };
  const nodeArgs = options.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.cpuProfileDir}`] : [];
  const child = await startChild({
    name: 'tessera',
    args: [...nodeArgs, bin, 'serve'],
    env,
    cwd: options.dataDir,
    port,
    readyPath: '/readyz',
    logFile: options.logFile,
  });
  const rss = new RssSampler(child.pid).start();
  return {
    ...child,
    rss,
    env,
    async stop(graceMs?: number) {
      rss.stop();
      await child.stop(graceMs);
    },
  };
}
