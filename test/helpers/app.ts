import type { FastifyInstance } from 'fastify';
import type { DestinationStream } from 'pino';
import { buildApp } from '../../src/app.js';
import { type Config, loadConfig } from '../../src/config.js';
import { createTestDatabase } from './databases.js';

/** A fixed key-encryption secret for tests (never used outside them). */
export const TEST_KEY_ENCRYPTION_SECRET = 'test-only-key-encryption-secret-0123456789abcdef';

/**
 * The configuration tests run with: the real loader, cheap argon2 parameters
 * (the algorithm is the same, the cost is not what we test), silent logs.
 */
export function testConfig(databaseUrl: string, env: Record<string, string> = {}): Config {
  return loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: databaseUrl,
    KEY_ENCRYPTION_SECRET: TEST_KEY_ENCRYPTION_SECRET,
    ISSUER: 'http://tessera.test',
    AUDIENCE: 'https://api.example.test',
    ARGON2_MEMORY_COST: '1024',
    ARGON2_TIME_COST: '1',
    LOG_LEVEL: 'silent',
    // Suites drive many requests from one address; test/security/throttling.test.ts turns limits on.
    RATE_LIMIT_TOKEN: '0',
    RATE_LIMIT_REGISTER: '0',
    RATE_LIMIT_PASSWORD: '0',
    // Two cores shared by parallel suites: lag is not overload here; test/security/overload.test.ts tests shedding.
    MAX_EVENT_LOOP_DELAY: '0',
    ...env,
  });
}

/** A controllable clock: starts at the real time, moves only when told. */
export class TestClock {
  constructor(public ms = Date.now()) {}
  now = (): number => this.ms;
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

export interface TestApp {
  app: FastifyInstance;
  config: Config;
  databaseUrl: string;
  close(): Promise<void>;
}

/** Builds the real app on a fresh database of `provider`. */
export async function startTestApp(
  provider: 'sqlite' | 'postgres',
  options: {
    env?: Record<string, string>;
    now?: () => number;
    logStream?: DestinationStream;
    databaseUrl?: string;
  } = {},
): Promise<TestApp> {
  const database = options.databaseUrl ? null : await createTestDatabase(provider);
  const databaseUrl = options.databaseUrl ?? database?.url ?? '';
  const config = testConfig(databaseUrl, options.env);
  const app = buildApp(config, {
    ...(options.now ? { now: options.now } : {}),
    ...(options.logStream ? { logStream: options.logStream } : {}),
  });
  await app.ready();
  return {
    app,
    config,
    databaseUrl,
    close: async () => {
      await app.close();
      await database?.drop();
    },
  };
}

/** Registers a user and logs in; returns the token response. */
export async function registerAndLogin(
  app: FastifyInstance,
  username = `user-${Math.random().toString(36).slice(2, 10)}`,
  password = 'correct horse battery staple',
): Promise<{ username: string; password: string; userId: string; access_token: string; refresh_token: string }> {
  const created = await app.inject({ method: 'POST', url: '/v1/users', payload: { username, password } });
  if (created.statusCode !== 201) throw new Error(`registration failed: ${created.statusCode} ${created.body}`);
  const login = await app.inject({
    method: 'POST',
    url: '/oauth/token',
    payload: { grant_type: 'password', username, password },
  });
  if (login.statusCode !== 200) throw new Error(`login failed: ${login.statusCode} ${login.body}`);
  return { username, password, userId: created.json().id, ...login.json() };
}
