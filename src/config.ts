import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, resolve } from 'node:path';
import { type Static, Type } from 'typebox';
import Value from 'typebox/value';

const MINUTE = 60;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const YEAR = 365 * DAY;
/**
 * The longest lifetime or interval accepted, seconds (10 years): every Date tessera derives from
 * settings (now + SESSION_MAX_AGE, now - (ACCESS_TOKEN_TTL + CLOCK_LEEWAY), ...) stays a valid Date.
 */
const MAX_LIFETIME = 10 * YEAR;
/** The longest setTimeout/setInterval wait accepted, seconds: Node runs a longer one (over 2^31 - 1 ms) after 1 ms. */
const MAX_TIMER = 24 * DAY;

/** A duration in seconds; `unit` lets a refused value's message say what the limit means. */
const Seconds = (defaultValue: number, description: string, minimum = 1, maximum = MAX_LIFETIME) =>
  Type.Integer({ minimum, maximum, default: defaultValue, description, unit: 'seconds' });

const Bool = (defaultValue: boolean, description: string) => Type.Boolean({ default: defaultValue, description });

/**
 * Every setting tessera reads from the environment. `.env.example` documents the
 * same list; the test in test/config.test.ts keeps the two in step.
 */
export const EnvSchema = Type.Object({
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('production'), Type.Literal('test')], {
    default: 'development',
  }),
  HOST: Type.String({ minLength: 1, default: '0.0.0.0', description: 'Address to listen on' }),
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 3000 }),
  DATABASE_URL: Type.String({ pattern: '^(file:|postgres(ql)?://)', default: 'file:./data/tessera.db' }),
  DATA_DIR: Type.String({ minLength: 1, default: './data' }),
  SQLITE_SYNCHRONOUS: Type.Union([Type.Literal('normal'), Type.Literal('full')], { default: 'normal' }),
  POSTGRES_PREPARED_STATEMENTS: Bool(true, 'PostgreSQL: named prepared statements on the refresh path'),
  ISSUER: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$' })),
  AUDIENCE: Type.Optional(Type.String({ minLength: 1 })),
  CLIENT_ID: Type.String({ minLength: 1, default: 'tessera' }),
  ACCESS_TOKEN_TTL: Seconds(900, 'Access token lifetime, seconds', 30),
  REFRESH_TOKEN_TTL: Seconds(14 * 24 * 3600, 'Refresh token idle lifetime, seconds', 60),
  SESSION_MAX_AGE: Seconds(30 * 24 * 3600, 'Absolute session lifetime, seconds', 60),
  REFRESH_REUSE_GRACE: Seconds(10, 'Seconds an old refresh token still yields the same successor', 0, DAY),
  ALLOW_REGISTRATION: Bool(true, 'Whether POST /v1/users is open to anyone'),
  KEY_ENCRYPTION_SECRET: Type.Optional(Type.String({ minLength: 32 })),
  SIGNING_KEY_BITS: Type.Union([Type.Literal(2048), Type.Literal(3072), Type.Literal(4096)], { default: 2048 }),
  KEY_ENCRYPTION_SECRET_PREVIOUS: Type.Optional(Type.String({ minLength: 32 })),
  KEY_ROTATION_INTERVAL: Seconds(30 * 24 * 3600, 'Seconds a signing key signs before the next takes over; 0 = off', 0),
  KEY_PUBLISH_LEAD: Seconds(24 * 3600, 'Seconds a new key is published in the JWKS before it signs', 1),
  KEY_REFRESH_INTERVAL: Seconds(60, 'How often each instance reloads signing keys from the database', 1, MAX_TIMER),
  JWKS_MAX_AGE: Seconds(300, 'Cache-Control max-age of the JWKS, seconds', 0, YEAR),
  CLOCK_LEEWAY: Seconds(60, 'Clock skew tolerated between tessera and verifiers, seconds', 0, DAY),
  SERVICE_CREDENTIALS: Type.Optional(
    Type.String({ pattern: '^[A-Za-z0-9._~-]+:[^,\\s]{32,}(,[A-Za-z0-9._~-]+:[^,\\s]{32,})*$' }),
  ),
  ARGON2_MEMORY_COST: Type.Integer({ minimum: 8, maximum: 4 * 1024 * 1024, default: 19456 }),
  ARGON2_TIME_COST: Type.Integer({ minimum: 1, maximum: 100, default: 2 }),
  ARGON2_PARALLELISM: Type.Integer({ minimum: 1, maximum: 64, default: 1 }),
  PRUNE_INTERVAL: Seconds(
    3600,
    'Seconds between deletions of ended sessions and old audit events; 0 = off',
    0,
    MAX_TIMER,
  ),
  AUDIT_RETENTION_DAYS: Type.Integer({ minimum: 1, maximum: MAX_LIFETIME / DAY, default: 90, unit: 'days' }),
  HASH_CONCURRENCY: Type.Optional(Type.Integer({ minimum: 1, maximum: 256 })),
  HASH_QUEUE_LIMIT: Type.Integer({ minimum: 0, maximum: 100_000, default: 64 }),
  SIGNING_THREADS: Type.Optional(Type.Integer({ minimum: 1, maximum: 64 })),
  HASH_THREAD_NICE: Type.Integer({ minimum: 0, maximum: 19, default: 10 }),
  HASH_THREAD_IDLE: Bool(true, 'Hashing and other background threads run under SCHED_IDLE (Linux, with chrt)'),
  REDIS_URL: Type.Optional(Type.String({ pattern: '^rediss?://' })),
  RATE_LIMIT_TOKEN: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 120 }),
  RATE_LIMIT_REGISTER: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 10 }),
  RATE_LIMIT_PASSWORD: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 10 }),
  LOGIN_FREE_ATTEMPTS: Type.Integer({ minimum: 1, maximum: 1_000_000_000, default: 5 }),
  LOGIN_FREE_ATTEMPTS_ACCOUNT: Type.Integer({ minimum: 1, maximum: 1_000_000_000, default: 20 }),
  LOGIN_MAX_DELAY: Seconds(900, 'Longest wait imposed after repeated failed logins, seconds', 1, DAY),
  REFRESH_TOKEN_COOKIE: Bool(false, 'Browser mode: refresh tokens travel only in an HttpOnly cookie'),
  REFRESH_TOKEN_COOKIE_NAME: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$', default: 'tessera_refresh' }),
  COOKIE_SECURE: Bool(true, 'Mark the refresh-token cookie Secure (HTTPS only; browsers treat localhost as secure)'),
  METRICS_TOKEN: Type.Optional(Type.String({ minLength: 16 })),
  ALLOWED_ORIGINS: Type.Optional(Type.String({ pattern: '^https?://[^,\\s]+(,https?://[^,\\s]+)*$' })),
  MAX_EVENT_LOOP_DELAY: Type.Integer({ minimum: 0, maximum: MINUTE * 1000, default: 1000, unit: 'milliseconds' }),
  MAX_HEAP_USED_MB: Type.Integer({ minimum: 0, maximum: 1024 * 1024, default: 1024, unit: 'MiB' }),
  HEAP_GROWING_PERCENT: Type.Integer({ minimum: 0, maximum: 1000, default: 30 }),
  TRUST_PROXY: Bool(false, 'Trust X-Forwarded-* headers from a reverse proxy'),
  SHUTDOWN_TIMEOUT: Seconds(10, 'Seconds to finish in-flight requests on SIGTERM', 1, HOUR),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => Type.Literal(level)),
    { default: 'info' },
  ),
});

type Env = Static<typeof EnvSchema>;
type SettingName = keyof typeof EnvSchema.properties;
const SETTINGS = Object.keys(EnvSchema.properties) as SettingName[];

/**
 * The settings whose values are secret or may carry one: keys, passwords and tokens, and the
 * database and Redis URLs (a password in the userinfo, or for PostgreSQL also `?password=`).
 * An invalid one is reported by name and by the rule it breaks, never with its value. A test in
 * test/config.test.ts keeps every setting named like a secret (SECRET, PASSWORD, CREDENTIALS,
 * *_TOKEN, *_URL) in this list.
 */
export const SECRET_SETTINGS: ReadonlySet<string> = new Set<SettingName>([
  'DATABASE_URL',
  'KEY_ENCRYPTION_SECRET',
  'KEY_ENCRYPTION_SECRET_PREVIOUS',
  'SERVICE_CREDENTIALS',
  'REDIS_URL',
  'METRICS_TOKEN',
]);

/** What a setting with a `pattern` must look like, in words (the pattern itself helps nobody). */
const FORMATS: Partial<Record<SettingName, string>> = {
  DATABASE_URL: 'must start with file: (SQLite) or postgres:// or postgresql:// (PostgreSQL)',
  ISSUER: 'must be an http:// or https:// URL',
  SERVICE_CREDENTIALS: 'must be comma-separated id:secret pairs, each secret at least 32 characters',
  REDIS_URL: 'must start with redis:// or rediss://',
  REFRESH_TOKEN_COOKIE_NAME: 'must be 1 to 64 letters, digits, _ or -',
  ALLOWED_ORIGINS: 'must be comma-separated origins such as https://app.example.com',
};

/** The validated configuration the whole application is built from. */
export interface Config {
  env: Env['NODE_ENV'];
  host: string;
  port: number;
  databaseUrl: string;
  /** SQLite `PRAGMA synchronous` (WAL mode): `normal` survives a process crash, `full` also a power loss. */
  sqliteSynchronous: 'normal' | 'full';
  /** PostgreSQL: the driver's statements are named prepared statements. */
  postgresPreparedStatements: boolean;
  dataDir: string;
  issuer: string;
  audience: string;
  clientId: string;
  accessTokenTtl: number;
  refreshTokenTtl: number;
  sessionMaxAge: number;
  refreshReuseGrace: number;
  allowRegistration: boolean;
  keyEncryptionSecret: string;
  /** The secret being replaced during `tessera keys rewrap`; still accepted for reading. */
  previousKeyEncryptionSecret: string | undefined;
  signingKeyBits: 2048 | 3072 | 4096;
  /** Seconds between scheduled key rotations; 0 turns scheduled rotation off. */
  keyRotationInterval: number;
  /** Seconds a `next` key is published before it starts signing. */
  keyPublishLead: number;
  keyRefreshInterval: number;
  /** JWKS Cache-Control max-age: JWKS_MAX_AGE, capped so caches always see a `next` key in time. */
  jwksMaxAge: number;
  clockLeeway: number;
  /** Services allowed to call /oauth/introspect and /v1/revocations (HTTP Basic), by id. */
  serviceCredentials: Map<string, string>;
  argon2: { memoryCost: number; timeCost: number; parallelism: number };
  /** Seconds between pruning passes (0 = off) and how long audit events are kept, in days. */
  pruneInterval: number;
  auditRetentionDays: number;
  /** Password hashing: hashes in flight (default: one per core) and waiting before 503. */
  hashing: { concurrency: number; queueLimit: number };
  /** Threads computing RS256 signatures (default: one per core). */
  signingThreads: number;
  redisUrl: string | undefined;
  /** Requests per minute per client IP; 0 = no limit. */
  rateLimits: { token: number; register: number; password: number };
  /** Per-account login throttling (see src/services/login-throttle.ts). */
  loginThrottle: { freeAttempts: number; freeAttemptsAccount: number; maxDelay: number };
  /** Cookie mode for browser frontends (see README "Browsers"). */
  refreshCookie: { enabled: boolean; name: string; secure: boolean };
  /** Bearer token for GET /metrics; without it only loopback clients may read metrics. */
  metricsToken: string | undefined;
  /** Browser origins allowed by CORS; empty = no cross-origin access. */
  allowedOrigins: string[];
  /** Load shedding thresholds; 0 turns one off. */
  pressure: { maxEventLoopDelay: number; maxHeapUsedBytes: number };
  /**
   * V8's old-generation growth between major collections, per cent of the live
   * heap (`--heap-growing-percent`); 0 leaves V8's own factor (up to 4x).
   */
  heapGrowingPercent: number;
  /** How much lower than the event loop's the CPU priority (nice) of the hashing and other background threads is; 0 = same. */
  hashThreadNice: number;
  /** The same threads also run under SCHED_IDLE: only on CPU time no other thread wants (Linux). */
  hashThreadIdle: boolean;
  trustProxy: boolean;
  shutdownTimeout: number;
  logLevel: string;
}

/** Thrown when the environment holds an invalid setting; the message names it. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

const BOOLEAN_WORDS: Record<string, boolean> = {
  true: true,
  '1': true,
  yes: true,
  false: false,
  '0': false,
  no: false,
};

/**
 * Validates the environment and returns the configuration. Empty values count as
 * unset. Throws a {@link ConfigError} naming every bad setting.
 *
 * Outside production, a missing KEY_ENCRYPTION_SECRET is generated once into
 * `DATA_DIR/key-encryption-secret` (with a warning through `warn`); in production
 * it stops start-up, because a default secret would silently protect nothing.
 */
export function loadConfig(
  source: Record<string, string | undefined> = process.env,
  warn: (message: string) => void = (message) => process.emitWarning(message),
): Config {
  const raw: Record<string, unknown> = {};
  // What is wrong with each bad setting, by name.
  const problems = new Map<string, string>();
  for (const key of SETTINGS) {
    const value = source[key];
    if (value === undefined || value === '') continue;
    const schema = settingSchema(key);
    if (schema.type === 'integer' || schema.anyOf?.every((option) => typeof option.const === 'number')) {
      // Plain digits only: a conversion would silently truncate 0.5 to 0 and read 1e3 or 0x10.
      if (/^\d+$/.test(value)) raw[key] = Number(value);
      else problems.set(key, schema.anyOf ? oneOf(schema.anyOf) : INTEGER_RULE);
    } else if (typeof schema.default === 'boolean') {
      raw[key] = BOOLEAN_WORDS[value.toLowerCase()] ?? value;
    } else {
      raw[key] = value;
    }
  }
  const withDefaults = Value.Default(EnvSchema, Value.Convert(EnvSchema, raw)) as Record<string, unknown>;
  for (const error of Value.Errors(EnvSchema, withDefaults)) {
    const name = error.instancePath.replace(/^\//, '') || 'environment';
    if (!problems.has(name)) problems.set(name, describeError(name, error, source[name] ?? ''));
  }
  // Checks a pattern cannot express, on the settings that passed the schema.
  const urlChecks: Partial<Record<SettingName, (value: string) => string | undefined>> = {
    ISSUER: issuerProblem,
    ALLOWED_ORIGINS: allowedOriginsProblem,
  };
  for (const [name, check] of Object.entries(urlChecks)) {
    const value = withDefaults[name];
    const problem = typeof value === 'string' && !problems.has(name) ? check(value) : undefined;
    if (problem) problems.set(name, problem);
  }
  if (problems.size > 0) {
    const order = (name: string) =>
      SETTINGS.includes(name as SettingName) ? SETTINGS.indexOf(name as SettingName) : -1;
    const lines = [...problems]
      .sort(([left], [right]) => order(left) - order(right))
      .map(([name, problem]) => `${name}: ${problem}${shownValue(name, source[name])}`);
    throw new ConfigError(`Invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const env = withDefaults as Env;
  const issuer = (env.ISSUER ?? `http://localhost:${env.PORT}`).replace(/\/+$/, '');
  if (env.SESSION_MAX_AGE < env.REFRESH_TOKEN_TTL) {
    throw new ConfigError('Invalid configuration:\n  SESSION_MAX_AGE must be at least REFRESH_TOKEN_TTL');
  }
  if (env.KEY_ROTATION_INTERVAL > 0 && env.KEY_ROTATION_INTERVAL <= env.KEY_PUBLISH_LEAD) {
    throw new ConfigError(
      'Invalid configuration:\n  KEY_ROTATION_INTERVAL must be longer than KEY_PUBLISH_LEAD (or 0)',
    );
  }
  return {
    env: env.NODE_ENV,
    host: env.HOST,
    port: env.PORT,
    databaseUrl: env.DATABASE_URL,
    sqliteSynchronous: env.SQLITE_SYNCHRONOUS,
    postgresPreparedStatements: env.POSTGRES_PREPARED_STATEMENTS,
    dataDir: resolve(env.DATA_DIR),
    issuer,
    audience: env.AUDIENCE ?? issuer,
    clientId: env.CLIENT_ID,
    accessTokenTtl: env.ACCESS_TOKEN_TTL,
    refreshTokenTtl: env.REFRESH_TOKEN_TTL,
    sessionMaxAge: env.SESSION_MAX_AGE,
    refreshReuseGrace: env.REFRESH_REUSE_GRACE,
    allowRegistration: env.ALLOW_REGISTRATION,
    keyEncryptionSecret: env.KEY_ENCRYPTION_SECRET ?? developmentSecret(env.NODE_ENV, resolve(env.DATA_DIR), warn),
    previousKeyEncryptionSecret: env.KEY_ENCRYPTION_SECRET_PREVIOUS,
    signingKeyBits: env.SIGNING_KEY_BITS,
    keyRotationInterval: env.KEY_ROTATION_INTERVAL,
    keyPublishLead: env.KEY_PUBLISH_LEAD,
    keyRefreshInterval: env.KEY_REFRESH_INTERVAL,
    // A verifier that cached the JWKS just before a `next` key appeared must
    // refetch before that key signs: max-age plus one reload interval stays
    // within half the lead.
    jwksMaxAge: Math.max(
      0,
      Math.min(env.JWKS_MAX_AGE, Math.floor(env.KEY_PUBLISH_LEAD / 2) - env.KEY_REFRESH_INTERVAL),
    ),
    clockLeeway: env.CLOCK_LEEWAY,
    serviceCredentials: new Map(
      (env.SERVICE_CREDENTIALS ?? '')
        .split(',')
        .filter(Boolean)
        .map((pair) => [pair.slice(0, pair.indexOf(':')), pair.slice(pair.indexOf(':') + 1)] as const),
    ),
    argon2: {
      memoryCost: env.ARGON2_MEMORY_COST,
      timeCost: env.ARGON2_TIME_COST,
      parallelism: env.ARGON2_PARALLELISM,
    },
    pruneInterval: env.PRUNE_INTERVAL,
    auditRetentionDays: env.AUDIT_RETENTION_DAYS,
    hashing: {
      // One core is left to everything else (JWKS, refresh, health) during a login flood.
      concurrency: env.HASH_CONCURRENCY ?? Math.max(1, availableParallelism() - 1),
      queueLimit: env.HASH_QUEUE_LIMIT,
    },
    // One per core: with one thread, signing stops whenever that thread loses its core to the
    // event loop; on two cores a second one measured ~20 % more refreshes/s (README, Performance).
    signingThreads: env.SIGNING_THREADS ?? Math.min(64, availableParallelism()),
    redisUrl: env.REDIS_URL,
    rateLimits: { token: env.RATE_LIMIT_TOKEN, register: env.RATE_LIMIT_REGISTER, password: env.RATE_LIMIT_PASSWORD },
    loginThrottle: {
      freeAttempts: env.LOGIN_FREE_ATTEMPTS,
      freeAttemptsAccount: env.LOGIN_FREE_ATTEMPTS_ACCOUNT,
      maxDelay: env.LOGIN_MAX_DELAY,
    },
    refreshCookie: {
      enabled: env.REFRESH_TOKEN_COOKIE,
      name: env.REFRESH_TOKEN_COOKIE_NAME,
      secure: env.COOKIE_SECURE,
    },
    metricsToken: env.METRICS_TOKEN,
    allowedOrigins: (env.ALLOWED_ORIGINS ?? '').split(',').filter(Boolean),
    pressure: { maxEventLoopDelay: env.MAX_EVENT_LOOP_DELAY, maxHeapUsedBytes: env.MAX_HEAP_USED_MB * 1024 * 1024 },
    heapGrowingPercent: env.HEAP_GROWING_PERCENT,
    hashThreadNice: env.HASH_THREAD_NICE,
    hashThreadIdle: env.HASH_THREAD_IDLE,
    trustProxy: env.TRUST_PROXY,
    shutdownTimeout: env.SHUTDOWN_TIMEOUT,
    logLevel: env.LOG_LEVEL,
  };
}

const INTEGER_RULE = 'must be a whole number: digits only, no sign, decimal point, exponent or spaces';

type SettingSchema = { type?: unknown; default?: unknown; anyOf?: { const?: unknown }[]; unit?: string };

function settingSchema(name: string): SettingSchema {
  return (EnvSchema.properties[name as SettingName] ?? {}) as SettingSchema;
}

function oneOf(options: { const?: unknown }[]): string {
  return `must be one of ${options.map((option) => option.const).join(', ')}`;
}

/** A schema error in words, without the value (the caller appends it only for non-secret settings). */
function describeError(name: string, error: { keyword: string; message: string; params: unknown }, value: string) {
  const schema = settingSchema(name);
  const limit = (error.params as { limit?: unknown }).limit;
  const unit = schema.unit ? ` ${schema.unit}` : '';
  if (schema.anyOf) return oneOf(schema.anyOf);
  switch (error.keyword) {
    case 'type':
      return schema.type === 'boolean' ? 'must be true or false (also 1/0, yes/no)' : error.message;
    case 'minimum':
      return `must be at least ${limit}${unit}`;
    case 'maximum':
      return `must be at most ${limit}${unit}${schema.unit === 'seconds' && typeof limit === 'number' ? ` (${inWords(limit)})` : ''}`;
    case 'minLength':
      return `must be at least ${limit} characters long`;
    case 'pattern':
      if (name === 'SERVICE_CREDENTIALS') return serviceCredentialsProblem(value);
      return FORMATS[name as SettingName] ?? error.message;
    default:
      return error.message;
  }
}

/** 315360000 -> "10 years", 86400 -> "1 day". */
function inWords(seconds: number): string {
  const units: [string, number][] = [
    ['year', YEAR],
    ['day', DAY],
    ['hour', HOUR],
    ['minute', MINUTE],
  ];
  const [unit, size] = units.find(([, size]) => seconds % size === 0) ?? ['second', 1];
  const count = seconds / size;
  return `${count} ${unit}${count === 1 ? '' : 's'}`;
}

/**
 * Which SERVICE_CREDENTIALS entry is wrong and how, by its position only: a
 * pair written the wrong way round (secret:id) would put the secret where the
 * id goes, so a failing entry's id is never printed.
 */
function serviceCredentialsProblem(value: string): string {
  const wrong = value.split(',').flatMap((entry, index) => {
    const at = `entry ${index + 1}`;
    const colon = entry.indexOf(':');
    if (entry === '') return [`${at} is empty`];
    if (colon < 0) return [`${at} is not id:secret`];
    const id = entry.slice(0, colon);
    const secret = entry.slice(colon + 1);
    if (!/^[A-Za-z0-9._~-]+$/.test(id)) return [`${at}: the id may only contain letters, digits, . _ ~ and -`];
    if (/\s/.test(secret)) return [`${at}: the secret contains whitespace`];
    if (secret.length < 32) return [`${at}: the secret is shorter than 32 characters`];
    return [];
  });
  return [FORMATS.SERVICE_CREDENTIALS, ...wrong].join('; ');
}

function issuerProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'is not a valid URL';
  }
  // Even an empty one ("https://a/?"): the discovery URLs are the issuer with a path appended.
  if (/[?#]/.test(value))
    return "must not have a query (?) or fragment (#): tokens' iss and jwks_uri are built from it";
  if (url.username || url.password) return 'must not contain a user name or password';
  return undefined;
}

/** Each entry must be exactly what a browser sends as Origin, or it never matches (CORS, cookie mode). */
function allowedOriginsProblem(value: string): string | undefined {
  const wrong = value.split(',').flatMap((entry) => {
    const shown = JSON.stringify(withoutUserinfo(entry));
    let origin: string;
    try {
      origin = new URL(entry).origin;
    } catch {
      return [`${shown} is not a valid URL`];
    }
    return origin === entry ? [] : [`${shown} should be "${origin}"`];
  });
  return wrong.length > 0
    ? `each entry must be an origin exactly as browsers send it, scheme://host[:port] (no path, no trailing slash, lowercase, no default port): ${wrong.join('; ')}`
    : undefined;
}

/** The value as an error message may show it: never for a secret setting, never a URL's userinfo. */
function shownValue(name: string, value: string | undefined): string {
  if (SECRET_SETTINGS.has(name)) return ' (value not shown: secret)';
  return value === undefined ? '' : ` (got ${JSON.stringify(withoutUserinfo(value))})`;
}

/** `https://user:password@host` -> `https://***@host`, for each comma-separated part. */
function withoutUserinfo(value: string): string {
  return value.replace(/\/\/[^,]*@/g, '//***@');
}

function developmentSecret(nodeEnv: Env['NODE_ENV'], dataDir: string, warn: (message: string) => void): string {
  if (nodeEnv === 'production') {
    throw new ConfigError(
      'Invalid configuration:\n  KEY_ENCRYPTION_SECRET: required in production (at least 32 characters; generate one with `openssl rand -base64 48`)',
    );
  }
  const file = resolve(dataDir, 'key-encryption-secret');
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dirname(file), { recursive: true });
  const secret = randomBytes(48).toString('base64url');
  writeFileSync(file, `${secret}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  warn(
    `KEY_ENCRYPTION_SECRET is not set: generated a development secret in ${file}. ` +
      'Signing keys and sessions are encrypted with it; set KEY_ENCRYPTION_SECRET before deploying.',
  );
  return secret;
}
