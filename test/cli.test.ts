import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { startTestApp, TEST_KEY_ENCRYPTION_SECRET } from './helpers/app.js';
import { createTestDatabase } from './helpers/databases.js';

const cli = new URL('../bin/tessera-dev.ts', import.meta.url).pathname;

/** Runs `tessera <args>` as a user would, from the TypeScript sources. */
function tessera(
  args: string[],
  env: Record<string, string>,
  stdin = '',
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), cli, ...args], {
      env: {
        PATH: process.env.PATH ?? '',
        NODE_ENV: 'test',
        LOG_LEVEL: 'warn',
        ARGON2_MEMORY_COST: '1024',
        ARGON2_TIME_COST: '1',
        ...env,
      },
      cwd: mkdtempSync(join(tmpdir(), 'tessera-cwd-')),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

describe('tessera CLI', () => {
  let env: Record<string, string>;
  let drop: () => Promise<void>;
  before(async () => {
    const database = await createTestDatabase('sqlite');
    drop = database.drop;
    env = { DATABASE_URL: database.url, KEY_ENCRYPTION_SECRET: TEST_KEY_ENCRYPTION_SECRET };
  });
  after(() => drop());

  it('migrate applies migrations once', async () => {
    const first = await tessera(['migrate'], env);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /applied: .*init/);
    const second = await tessera(['migrate'], env);
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /up to date/);
  });

  it('users create reads the password from stdin; the user can then log in', async () => {
    const created = await tessera(['users', 'create', 'operator'], env, 'operator password\n');
    assert.equal(created.code, 0, created.stderr);
    assert.equal(JSON.parse(created.stdout).username, 'operator');
    assert.ok(!created.stdout.includes('operator password'));

    const taken = await tessera(['users', 'create', 'OPERATOR'], env, 'another password\n');
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, /taken/);

    const t = await startTestApp('sqlite', { databaseUrl: env.DATABASE_URL! });
    try {
      const login = await t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'password', username: 'operator', password: 'operator password' },
      });
      assert.equal(login.statusCode, 200);
    } finally {
      await t.app.close();
    }
  });

  it('users disable blocks logins', async () => {
    await tessera(['users', 'create', 'leaver'], env, 'leaver password\n');
    const disabled = await tessera(['users', 'disable', 'leaver'], env);
    assert.equal(disabled.code, 0, disabled.stderr);
    const missing = await tessera(['users', 'disable', 'nobody'], env);
    assert.equal(missing.code, 1);
    const t = await startTestApp('sqlite', { databaseUrl: env.DATABASE_URL! });
    try {
      const login = await t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'password', username: 'leaver', password: 'leaver password' },
      });
      assert.equal(login.json().error, 'invalid_grant');
    } finally {
      await t.app.close();
    }
  });

  it('keys rotate publishes a next key, keys revoke replaces a compromised current key, keys list never prints private keys', async () => {
    const before = await tessera(['keys', 'list'], env);
    assert.equal(before.code, 0, before.stderr);
    const oldKid = before.stdout.split('\n')[1]?.split('\t')[0];
    assert.ok(oldKid);
    const rotated = await tessera(['keys', 'rotate'], env);
    assert.equal(rotated.code, 0, rotated.stderr);
    const newKid = rotated.stdout.match(/published new key: (\S+);/)?.[1];
    assert.ok(newKid && newKid !== oldKid);
    const list = await tessera(['keys', 'list'], env);
    assert.match(list.stdout, new RegExp(`${newKid}\tnext`));
    assert.match(list.stdout, new RegExp(`${oldKid}\tcurrent`));
    assert.ok(!/PRIVATE|"d"|v1\./.test(list.stdout));

    const jwksKids = async () => {
      const t = await startTestApp('sqlite', { databaseUrl: env.DATABASE_URL! });
      try {
        return new Set(
          (await t.app.inject({ url: '/.well-known/jwks.json' })).json().keys.map((key: { kid: string }) => key.kid),
        );
      } finally {
        await t.app.close();
      }
    };
    // Published before it signs.
    assert.deepEqual(await jwksKids(), new Set([newKid, oldKid]));

    const revoked = await tessera(['keys', 'revoke', oldKid], env);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.match(revoked.stdout, new RegExp(`now signing with ${newKid}`));
    assert.deepEqual(await jwksKids(), new Set([newKid]));
    assert.equal((await tessera(['keys', 'revoke', 'no-such-kid'], env)).code, 1);
  });

  it('keys rewrap moves every private key and session secret to a new key-encryption secret', async () => {
    const database = await createTestDatabase('sqlite');
    const oldEnv = { DATABASE_URL: database.url, KEY_ENCRYPTION_SECRET: TEST_KEY_ENCRYPTION_SECRET };
    const newSecret = 'a-brand-new-key-encryption-secret-0123456789';
    try {
      await tessera(['users', 'create', 'rewrapped'], oldEnv, 'rewrapped password\n');
      let refreshToken: string;
      const before = await startTestApp('sqlite', { databaseUrl: database.url });
      try {
        const login = await before.app.inject({
          method: 'POST',
          url: '/oauth/token',
          payload: { grant_type: 'password', username: 'rewrapped', password: 'rewrapped password' },
        });
        refreshToken = login.json().refresh_token;
      } finally {
        await before.app.close();
      }
      const rewrap = await tessera(['keys', 'rewrap'], {
        ...oldEnv,
        KEY_ENCRYPTION_SECRET: newSecret,
        KEY_ENCRYPTION_SECRET_PREVIOUS: TEST_KEY_ENCRYPTION_SECRET,
      });
      assert.equal(rewrap.code, 0, rewrap.stderr);
      assert.match(rewrap.stdout, /1 signing keys, 1 session secrets/);

      // Only the new secret is needed now: the key loads and the session refreshes.
      const after = await startTestApp('sqlite', {
        databaseUrl: database.url,
        env: { KEY_ENCRYPTION_SECRET: newSecret },
      });
      try {
        assert.equal((await after.app.inject({ url: '/readyz' })).statusCode, 200);
        const refreshed = await after.app.inject({
          method: 'POST',
          url: '/oauth/token',
          payload: { grant_type: 'refresh_token', refresh_token: refreshToken },
        });
        assert.equal(refreshed.statusCode, 200, refreshed.body);
      } finally {
        await after.app.close();
      }
      // And the old secret alone no longer opens anything.
      await assert.rejects(startTestApp('sqlite', { databaseUrl: database.url }));
    } finally {
      await database.drop();
    }
  });

  it('keys import accepts PKCS#1 and PKCS#8 PEM RSA keys and refuses others', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-keys-'));
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pkcs1 = join(dir, 'pkcs1.pem');
    writeFileSync(pkcs1, privateKey.export({ type: 'pkcs1', format: 'pem' }));
    const imported = await tessera(['keys', 'import', pkcs1], env);
    assert.equal(imported.code, 0, imported.stderr);
    const expectedKid = await calculateJwkThumbprint(await exportJWK(publicKey));
    assert.match(imported.stdout, new RegExp(expectedKid));

    const pkcs8 = join(dir, 'pkcs8.pem');
    writeFileSync(
      pkcs8,
      generateKeyPairSync('rsa', { modulusLength: 3072 }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
    );
    // One key waits as `next` at a time; once that one is out of the way the next import is taken.
    const waiting = await tessera(['keys', 'import', pkcs8], env);
    assert.equal(waiting.code, 1);
    assert.match(waiting.stderr, /already waiting/);
    assert.equal((await tessera(['keys', 'revoke', expectedKid], env)).code, 0);
    assert.equal((await tessera(['keys', 'import', pkcs8], env)).code, 0);

    const again = await tessera(['keys', 'import', pkcs1], env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already/);

    const small = join(dir, 'small.pem');
    writeFileSync(
      small,
      generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
    );
    const tooSmall = await tessera(['keys', 'import', small], env);
    assert.equal(tooSmall.code, 1);
    assert.match(tooSmall.stderr, /at least 2048/);

    const ec = join(dir, 'ec.pem');
    writeFileSync(
      ec,
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
    );
    const notRsa = await tessera(['keys', 'import', ec], env);
    assert.equal(notRsa.code, 1);
    assert.match(notRsa.stderr, /only RSA/);

    const garbage = join(dir, 'garbage.pem');
    writeFileSync(garbage, 'not a key');
    assert.equal((await tessera(['keys', 'import', garbage], env)).code, 1);
  });

  it('prints usage for unknown commands and names a bad setting', async () => {
    const unknown = await tessera(['frobnicate'], env);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /Usage:/);
    const bad = await tessera(['migrate'], { ...env, PORT: 'many' });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /PORT/);
    const prod = await tessera(['migrate'], { DATABASE_URL: env.DATABASE_URL!, NODE_ENV: 'production' });
    assert.equal(prod.code, 1);
    assert.match(prod.stderr, /KEY_ENCRYPTION_SECRET/);
  });
});
