import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, EnvSchema, loadConfig, SECRET_SETTINGS } from '../src/config.js';
import type { RevocationRepository } from '../src/repositories/revocation-repository.js';
import { RevocationService } from '../src/services/revocation-service.js';

const secret = 'k'.repeat(40);

/** A setting's schema, as far as these tests look into it. */
const schemaOf = (name: string) =>
  EnvSchema.properties[name as keyof typeof EnvSchema.properties] as unknown as {
    type?: string;
    maximum?: number;
    unit?: string;
  };

/** The message of the ConfigError loadConfig throws for `env` (what `tessera` prints on stderr). */
function configError(env: Record<string, string>): string {
  try {
    loadConfig({ KEY_ENCRYPTION_SECRET: secret, ...env });
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.message;
  }
  assert.fail(`accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const config = loadConfig({ KEY_ENCRYPTION_SECRET: secret });
    assert.equal(config.port, 3000);
    assert.equal(config.databaseUrl, 'file:./data/tessera.db');
    assert.equal(config.issuer, 'http://localhost:3000');
    assert.equal(config.audience, 'http://localhost:3000');
    assert.equal(config.accessTokenTtl, 900);
    assert.equal(config.refreshTokenTtl, 14 * 24 * 3600);
    assert.equal(config.sessionMaxAge, 30 * 24 * 3600);
    assert.equal(config.refreshReuseGrace, 10);
    assert.equal(config.allowRegistration, true);
    assert.equal(config.signingKeyBits, 2048);
    assert.deepEqual(config.argon2, { memoryCost: 19456, timeCost: 2, parallelism: 1 });
    assert.equal(config.heapGrowingPercent, 30);
  });

  it('reads and converts settings', () => {
    const config = loadConfig({
      KEY_ENCRYPTION_SECRET: secret,
      PORT: '8080',
      ISSUER: 'https://auth.example.com/',
      ALLOW_REGISTRATION: 'false',
      SIGNING_KEY_BITS: '4096',
      DATABASE_URL: 'postgresql://u@db/tessera',
    });
    assert.equal(config.port, 8080);
    assert.equal(config.issuer, 'https://auth.example.com', 'trailing slash removed so iss matches exactly');
    assert.equal(config.allowRegistration, false);
    assert.equal(config.signingKeyBits, 4096);
    assert.equal(config.databaseUrl, 'postgresql://u@db/tessera');
  });

  it('stops with a message naming each bad setting', () => {
    const bad: Array<[Record<string, string>, RegExp]> = [
      [{ PORT: 'eighty' }, /PORT/],
      [{ PORT: '70000' }, /PORT/],
      [{ SIGNING_KEY_BITS: '1024' }, /SIGNING_KEY_BITS: must be one of 2048, 3072, 4096/],
      [{ DATABASE_URL: 'mysql://x' }, /DATABASE_URL/],
      [{ ALLOW_REGISTRATION: 'perhaps' }, /ALLOW_REGISTRATION/],
      [{ ISSUER: 'not a url' }, /ISSUER/],
      [{ KEY_ENCRYPTION_SECRET: 'short' }, /KEY_ENCRYPTION_SECRET/],
      [{ REFRESH_TOKEN_TTL: '7200', SESSION_MAX_AGE: '100' }, /SESSION_MAX_AGE/],
      [{ LOG_LEVEL: 'loud' }, /LOG_LEVEL/],
      [{ HEAP_GROWING_PERCENT: '-5' }, /HEAP_GROWING_PERCENT/],
    ];
    for (const [env, message] of bad) {
      assert.throws(
        () => loadConfig({ KEY_ENCRYPTION_SECRET: secret, ...env }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.match(error.message, message);
          return true;
        },
      );
    }
  });

  it('names a bad secret setting and the rule it breaks, never its value', () => {
    const keySecret = 'Tr0ub4dor-almost-real-secret-31';
    const billing = 'b1ll1ng-service-secret-0123456789abcdef';
    const message = configError({
      KEY_ENCRYPTION_SECRET: keySecret,
      KEY_ENCRYPTION_SECRET_PREVIOUS: 'previous-secret-x',
      // The third pair is written the wrong way round: its secret sits where the id goes.
      SERVICE_CREDENTIALS: `billing:${billing},reports:tooshort-r3ports,R3versedSecretValue:x`,
      DATABASE_URL: 'mysql://admin:hunter2@db/x',
      REDIS_URL: 'http://:r3dis-pass@cache:6379',
      METRICS_TOKEN: 'm3trics-tok',
    });
    assert.match(message, /KEY_ENCRYPTION_SECRET: must be at least 32 characters/);
    assert.match(message, /KEY_ENCRYPTION_SECRET_PREVIOUS: must be at least 32 characters/);
    assert.match(
      message,
      /SERVICE_CREDENTIALS: .*entry 2: the secret is shorter than 32 characters; entry 3: the secret is shorter/,
    );
    assert.match(message, /DATABASE_URL: must start with file: .* or postgres:\/\/ or postgresql:\/\//);
    assert.match(message, /REDIS_URL: must start with redis:\/\/ or rediss:\/\//);
    assert.match(message, /METRICS_TOKEN: must be at least 16 characters/);
    for (const value of [
      keySecret,
      'previous-secret-x',
      billing,
      'tooshort-r3ports',
      'R3versedSecretValue',
      'hunter2',
      'r3dis-pass',
      'm3trics-tok',
    ]) {
      assert.ok(!message.includes(value), `the message shows ${value}:\n${message}`);
    }
    // Nor is a secret shown when the id before it is malformed, or the pair has no id at all.
    const noId = configError({ SERVICE_CREDENTIALS: `bad id:${billing},${billing}` });
    assert.match(noId, /entry 1: the id may only contain/);
    assert.match(noId, /entry 2 is not id:secret/);
    assert.ok(!noId.includes(billing), noId);
  });

  it('keeps every setting named like a secret in SECRET_SETTINGS', () => {
    // Request rates of POST /oauth/token and POST /v1/me/password: numbers.
    const notSecret = new Set(['RATE_LIMIT_TOKEN', 'RATE_LIMIT_PASSWORD']);
    for (const name of Object.keys(EnvSchema.properties)) {
      if (/SECRET|PASSWORD|CREDENTIAL|TOKEN$|_URL$/.test(name) && !notSecret.has(name)) {
        assert.ok(SECRET_SETTINGS.has(name), `${name} looks secret but is not in SECRET_SETTINGS`);
      }
    }
    for (const name of SECRET_SETTINGS) assert.ok(name in EnvSchema.properties, `${name} is not a setting`);
  });

  it('hides the userinfo of a URL it shows', () => {
    const message = configError({ ISSUER: 'https://admin:pa55word@auth.example.com' });
    assert.match(message, /ISSUER: must not contain a user name or password/);
    assert.ok(!message.includes('pa55word'), message);
  });

  it('takes integers as plain digits only, naming the setting otherwise', () => {
    const bad: Array<[string, string]> = [
      ['RATE_LIMIT_TOKEN', '0.5'], // used to become 0: rate limiting off
      ['MAX_HEAP_USED_MB', '1.5'],
      ['PORT', '8e3'],
      ['ACCESS_TOKEN_TTL', '0x400'],
      ['CLOCK_LEEWAY', '-1'],
      ['HASH_CONCURRENCY', '+2'],
      ['SHUTDOWN_TIMEOUT', ' 10'],
      ['SIGNING_KEY_BITS', '2048.0'],
    ];
    for (const [name, value] of bad) {
      const message = configError({ [name]: value });
      assert.match(message, new RegExp(`^  ${name}: must be (a whole number|one of)`, 'm'), message);
      assert.ok(message.includes(`(got ${JSON.stringify(value)})`), message);
    }
    assert.equal(loadConfig({ KEY_ENCRYPTION_SECRET: secret, RATE_LIMIT_TOKEN: '0' }).rateLimits.token, 0);
    assert.equal(loadConfig({ KEY_ENCRYPTION_SECRET: secret, PORT: '08080' }).port, 8080);
  });

  it('bounds every integer setting, saying what the limit is', () => {
    for (const name of Object.keys(EnvSchema.properties)) {
      if (schemaOf(name).type === 'integer') assert.ok(schemaOf(name).maximum !== undefined, `${name} has no maximum`);
    }
    assert.match(
      configError({ ACCESS_TOKEN_TTL: '9999999999999' }),
      /ACCESS_TOKEN_TTL: must be at most 315360000 seconds \(10 years\)/,
    );
    assert.match(
      configError({ PRUNE_INTERVAL: '3000000' }),
      /PRUNE_INTERVAL: must be at most 2073600 seconds \(24 days\)/,
    );
    assert.match(configError({ MAX_HEAP_USED_MB: '99999999999' }), /MAX_HEAP_USED_MB: must be at most 1048576 MiB/);
    assert.match(configError({ AUDIT_RETENTION_DAYS: '100000' }), /AUDIT_RETENTION_DAYS: must be at most 3650 days/);
  });

  it('at every duration maximum, each derived Date is valid and each timer fits', async () => {
    const max = (name: string) => schemaOf(name).maximum ?? Number.NaN;
    const env: Record<string, string> = {};
    for (const name of Object.keys(EnvSchema.properties)) if (schemaOf(name).unit) env[name] = String(max(name));
    env.KEY_PUBLISH_LEAD = String(max('KEY_ROTATION_INTERVAL') - 1); // must stay shorter than the rotation interval
    const config = loadConfig({ KEY_ENCRYPTION_SECRET: secret, ...env });
    assert.equal(config.accessTokenTtl, max('ACCESS_TOKEN_TTL'));
    const now = Date.now();
    const s = 1000;
    const derived = {
      revocationWindowStart: now - (config.accessTokenTtl + config.clockLeeway) * s,
      prunedSessionsBefore: now - (config.accessTokenTtl + config.clockLeeway + 3600) * s,
      prunedAuditBefore: now - config.auditRetentionDays * 24 * 3600 * s,
      retiredKeysBefore: now - (config.accessTokenTtl + config.clockLeeway + config.keyRefreshInterval) * s,
      sessionExpiresAt: now + config.sessionMaxAge * s,
      refreshExpiresAt: now + config.refreshTokenTtl * s,
      nextRotationAt: now + (config.keyRotationInterval + config.keyPublishLead) * s,
      loginCounterExpiresAt: now + config.loginThrottle.maxDelay * 4 * s,
    };
    for (const [what, ms] of Object.entries(derived)) {
      const year = new Date(ms).getUTCFullYear();
      assert.ok(year >= 1970 && year <= 9999, `${what}: ${new Date(ms).toString()}`);
    }
    // What GET /v1/revocations computes, with these settings.
    const none = async () => [];
    const repository = { sessionsRevokedAfter: none, usersRevokedAfter: none } as unknown as RevocationRepository;
    const feed = await new RevocationService(repository, config, () => now).feed();
    assert.equal(Date.parse(feed.windowStart), derived.revocationWindowStart);
    // Node runs a setTimeout/setInterval longer than 2^31 - 1 ms after 1 ms.
    for (const seconds of [config.pruneInterval, config.keyRefreshInterval, config.shutdownTimeout]) {
      assert.ok(seconds * 1000 <= 2 ** 31 - 1, String(seconds));
    }
  });

  it('refuses an ISSUER that is not a plain URL, naming ISSUER', () => {
    for (const issuer of ['http:///', 'https://[::1', 'http://x%zz', 'https://auth.example.com:99999']) {
      assert.match(configError({ ISSUER: issuer }), /^ {2}ISSUER: is not a valid URL/m, issuer);
    }
    for (const issuer of ['https://a/base?x=1#frag', 'https://a/base#frag', 'https://a/base?']) {
      assert.match(
        configError({ ISSUER: issuer }),
        /^ {2}ISSUER: must not have a query \(\?\) or fragment \(#\)/m,
        issuer,
      );
    }
    const config = loadConfig({ KEY_ENCRYPTION_SECRET: secret, ISSUER: 'https://auth.example.com/tessera/' });
    assert.equal(config.issuer, 'https://auth.example.com/tessera');
  });

  it('takes ALLOWED_ORIGINS exactly as browsers send Origin, and says what to write instead', () => {
    const fixes: Array<[string, string]> = [
      ['https://app.example.com/', 'https://app.example.com'],
      ['https://app.example.com/app', 'https://app.example.com'],
      ['https://App.Example.com', 'https://app.example.com'],
      ['https://app.example.com:443', 'https://app.example.com'],
    ];
    for (const [entry, origin] of fixes) {
      const message = configError({ ALLOWED_ORIGINS: `http://localhost:4000,${entry}` });
      assert.match(message, /^ {2}ALLOWED_ORIGINS: each entry must be an origin/m);
      assert.ok(message.includes(`"${entry}" should be "${origin}"`), message);
      assert.ok(!message.includes('"http://localhost:4000" should'), message);
    }
    assert.match(
      configError({ ALLOWED_ORIGINS: 'https://[::1' }),
      /ALLOWED_ORIGINS: .*"https:\/\/\[::1" is not a valid URL/,
    );
    const config = loadConfig({
      KEY_ENCRYPTION_SECRET: secret,
      ALLOWED_ORIGINS: 'https://app.example.com,http://localhost:4000',
    });
    assert.deepEqual(config.allowedOrigins, ['https://app.example.com', 'http://localhost:4000']);
  });

  it('refuses to start in production without KEY_ENCRYPTION_SECRET', () => {
    assert.throws(() => loadConfig({ NODE_ENV: 'production' }), /KEY_ENCRYPTION_SECRET: required in production/);
  });

  it('outside production, generates a development secret once, privately, with a warning', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-config-'));
    const warnings: string[] = [];
    const first = loadConfig({ DATA_DIR: dir }, (message) => warnings.push(message));
    const file = join(dir, 'key-encryption-secret');
    assert.ok(existsSync(file));
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /KEY_ENCRYPTION_SECRET is not set/);
    const second = loadConfig({ DATA_DIR: dir }, (message) => warnings.push(message));
    assert.equal(second.keyEncryptionSecret, first.keyEncryptionSecret);
    assert.equal(warnings.length, 1, 'the second start reuses it silently');
    assert.ok(first.keyEncryptionSecret.length >= 32);
  });

  it('.env.example documents every setting the schema reads', () => {
    const example = readFileSync(new URL('../.env.example', import.meta.url), 'utf8');
    for (const name of Object.keys(EnvSchema.properties)) {
      assert.match(example, new RegExp(`^${name}=`, 'm'), `${name} is missing from .env.example`);
    }
  });
});
