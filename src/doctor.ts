import { Redis } from 'ioredis';
import { type Config, ConfigError, loadConfig } from './config.js';
import { openDatabase } from './db/database.js';
import { migrationSource, providerOf } from './db/migrate.js';

/** One result of `tessera doctor`. */
export interface Finding {
  level: 'ok' | 'warn' | 'fail';
  check: string;
  message: string;
  /** What to do about it (warn and fail only). */
  fix?: string;
}

const OWASP_ARGON2 = { memoryCost: 19456, timeCost: 2 };

/**
 * Checks a deployment's configuration and surroundings and says what to fix:
 * settings, issuer URL shape, key-encryption secret strength, TLS and proxy
 * expectations, the database (reachable, migrated, clock), signing keys and
 * Redis. Read-only: it changes nothing.
 */
export async function runDoctor(env: Record<string, string | undefined>): Promise<Finding[]> {
  const findings: Finding[] = [];
  const add = (level: Finding['level'], check: string, message: string, fix?: string) =>
    findings.push({ level, check, message, ...(fix ? { fix } : {}) });

  let config: Config;
  try {
    // Doctor never writes a development secret: it only reports that one is missing.
    config = loadConfig({ ...env, NODE_ENV: env.NODE_ENV ?? 'development' }, () => {});
  } catch (error) {
    if (error instanceof ConfigError) {
      add('fail', 'settings', error.message, 'correct the settings named above (see .env.example)');
      return findings;
    }
    throw error;
  }
  const production = config.env === 'production';
  add('ok', 'settings', `all settings valid (NODE_ENV=${config.env})`);

  // Issuer: what every token's `iss` and every verifier's pinned issuer is.
  const issuer = new URL(config.issuer);
  if (issuer.search || issuer.hash) {
    add('fail', 'issuer', `ISSUER ${config.issuer} has a query or fragment`, 'use a plain https://host[/path] URL');
  } else if (production && issuer.protocol !== 'https:') {
    add(
      'fail',
      'issuer',
      `ISSUER ${config.issuer} is not https in production`,
      'serve tessera over TLS and set ISSUER to its https:// URL',
    );
  } else if (production && ['localhost', '127.0.0.1', '[::1]'].includes(issuer.hostname)) {
    add(
      'fail',
      'issuer',
      `ISSUER ${config.issuer} is a loopback address in production`,
      'set ISSUER to the public URL verifiers use',
    );
  } else {
    add('ok', 'issuer', `tokens are issued by ${config.issuer} for audience ${config.audience}`);
  }

  // Key-encryption secret: protects every private key and session secret at rest.
  if (!env.KEY_ENCRYPTION_SECRET) {
    add(
      production ? 'fail' : 'warn',
      'key-encryption secret',
      'KEY_ENCRYPTION_SECRET is not set (development uses a generated file in DATA_DIR)',
      'set KEY_ENCRYPTION_SECRET to `openssl rand -base64 48`',
    );
  } else {
    const weakness = secretWeakness(env.KEY_ENCRYPTION_SECRET);
    if (weakness)
      add(
        'warn',
        'key-encryption secret',
        `KEY_ENCRYPTION_SECRET looks weak: ${weakness}`,
        'generate one with `openssl rand -base64 48`',
      );
    else add('ok', 'key-encryption secret', 'KEY_ENCRYPTION_SECRET is long and varied');
  }
  if (config.previousKeyEncryptionSecret) {
    add(
      'warn',
      'key-encryption secret',
      'KEY_ENCRYPTION_SECRET_PREVIOUS is set',
      'after `tessera keys rewrap` on every database, remove it',
    );
  }
  for (const [id, secret] of config.serviceCredentials) {
    const weakness = secretWeakness(secret);
    if (weakness)
      add(
        'warn',
        'service credentials',
        `the secret of "${id}" looks weak: ${weakness}`,
        'use `openssl rand -base64 32`',
      );
  }

  // TLS and proxies.
  if (issuer.protocol === 'https:' && !config.trustProxy) {
    add(
      'warn',
      'proxy',
      'ISSUER is https but TRUST_PROXY is off: if TLS ends at a load balancer, rate limits and audit see its address, not the client’s',
      'set TRUST_PROXY=true when (and only when) tessera is reachable through the proxy alone',
    );
  }
  if (config.trustProxy && config.host === '0.0.0.0') {
    add(
      'warn',
      'proxy',
      'TRUST_PROXY is on and tessera listens on every interface: a client reaching it directly can forge X-Forwarded-For',
      'bind HOST to the interface the proxy uses, or firewall the port',
    );
  }
  if (config.refreshCookie.enabled && !config.refreshCookie.secure && production) {
    add(
      'fail',
      'cookies',
      'REFRESH_TOKEN_COOKIE with COOKIE_SECURE=false in production',
      'set COOKIE_SECURE=true (HTTPS only)',
    );
  }
  if (config.refreshCookie.enabled && config.allowedOrigins.length === 0 && production) {
    add(
      'warn',
      'cookies',
      'cookie mode is on but ALLOWED_ORIGINS is empty: only pages on the issuer’s own origin can refresh',
      'list your frontends in ALLOWED_ORIGINS',
    );
  }

  // Token and hashing policy.
  if (config.accessTokenTtl > 3600) {
    add(
      'warn',
      'tokens',
      `ACCESS_TOKEN_TTL is ${config.accessTokenTtl} s: a stolen access token lives that long`,
      'keep it at 15 minutes or less (RFC 9700)',
    );
  }
  if (config.argon2.memoryCost < OWASP_ARGON2.memoryCost || config.argon2.timeCost < OWASP_ARGON2.timeCost) {
    add(
      production ? 'fail' : 'warn',
      'password hashing',
      `argon2id m=${config.argon2.memoryCost} KiB, t=${config.argon2.timeCost} is below OWASP’s minimum (m=19456, t=2)`,
      'raise ARGON2_MEMORY_COST / ARGON2_TIME_COST',
    );
  } else {
    add(
      'ok',
      'password hashing',
      `argon2id m=${config.argon2.memoryCost} KiB, t=${config.argon2.timeCost}, p=${config.argon2.parallelism}`,
    );
  }
  if (config.keyRotationInterval === 0) {
    add(
      'warn',
      'signing keys',
      'scheduled key rotation is off (KEY_ROTATION_INTERVAL=0)',
      'rotate with `tessera keys rotate` on a schedule, or set KEY_ROTATION_INTERVAL',
    );
  }

  // The database: reachable, migrated, clock, keys.
  let db: Awaited<ReturnType<typeof openDatabase>> | null = null;
  try {
    db = await openDatabase(config.databaseUrl, { poolSize: 1 });
    await db.ping();
    add('ok', 'database', `${providerOf(config.databaseUrl)} reachable`);
    const expected = migrationSource(db.provider).migrations.map((migration) => migration.name);
    const rows = await db.prisma
      .$queryRawUnsafe<{ migration_name: string }[]>(
        'SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL',
      )
      .catch(() => []);
    const applied = new Set(rows.map((row) => row.migration_name));
    const pending = expected.filter((name) => !applied.has(name));
    if (pending.length > 0)
      add(
        'warn',
        'migrations',
        `${pending.length} pending: ${pending.join(', ')}`,
        'they apply at start-up, or run `tessera migrate`',
      );
    else add('ok', 'migrations', 'up to date');

    if (db.provider === 'postgres') {
      const [row] = await db.prisma.$queryRawUnsafe<{ now: Date }[]>('SELECT now() AS now');
      const skew = row ? Math.abs(row.now.getTime() - Date.now()) / 1000 : 0;
      if (skew > 5)
        add(
          'warn',
          'clock',
          `this machine’s clock and the database’s differ by ${skew.toFixed(1)} s`,
          'run NTP (chrony/systemd-timesyncd) on every host',
        );
      else add('ok', 'clock', `in step with the database (${skew.toFixed(2)} s)`);
    }
    if (applied.size > 0) {
      const current = await db.prisma.signingKey.count({ where: { status: 'current' } });
      if (current === 1) add('ok', 'signing keys', 'one current signing key');
      else
        add('warn', 'signing keys', `${current} current signing keys`, 'start tessera once: it creates the first key');
    }
  } catch (error) {
    add(
      'fail',
      'database',
      `cannot use ${providerOf(config.databaseUrl)}: ${(error as Error).message.split('\n')[0]}`,
      'check DATABASE_URL and that the database is up',
    );
  } finally {
    await db?.close().catch(() => {});
  }

  if (config.redisUrl) {
    const redis = new Redis(config.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2000 });
    redis.on('error', () => {});
    try {
      await redis.connect();
      await redis.ping();
      add('ok', 'redis', 'reachable: rate limits and login throttling are shared by all instances');
    } catch (error) {
      add(
        'fail',
        'redis',
        `REDIS_URL unreachable: ${(error as Error).message}`,
        'check REDIS_URL, or unset it for a single instance',
      );
    } finally {
      redis.disconnect();
    }
  } else if (production) {
    add(
      'warn',
      'redis',
      'no REDIS_URL: rate limits and login throttling are per instance',
      'set REDIS_URL when running several instances',
    );
  }
  return findings;
}

/** Why a secret looks weak, or null. */
function secretWeakness(secret: string): string | null {
  if (secret.length < 32) return `only ${secret.length} characters`;
  const distinct = new Set(secret).size;
  if (distinct < 12) return `only ${distinct} distinct characters`;
  if (/(change.?me|example|placeholder|secret|password|test)/i.test(secret)) return 'it contains a placeholder word';
  return null;
}
