import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, EnvSchema, loadConfig } from '../src/config.js';

const secret = 'k'.repeat(40);

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
      [{ REFRESH_TOKEN_TTL: '999999999', SESSION_MAX_AGE: '100' }, /SESSION_MAX_AGE/],
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
