import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { decodeJwt, decodeProtectedHeader, exportJWK, SignJWT } from 'jose';
import { buildApp } from '../../src/app.js';
import { registerAndLogin, startTestApp, type TestApp, testConfig } from '../helpers/app.js';
import { testProviders } from '../helpers/databases.js';

const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');

for (const provider of testProviders()) {
  describe(`forged access tokens are refused by /v1/me (${provider})`, () => {
    let t: TestApp;
    let genuine: string;
    let kid: string;
    let claims: Record<string, unknown>;
    let publicJwk: Record<string, string>;
    const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 });

    before(async () => {
      t = await startTestApp(provider);
      genuine = (await registerAndLogin(t.app)).access_token;
      kid = String(decodeProtectedHeader(genuine).kid);
      claims = decodeJwt(genuine);
      publicJwk = (await t.app.inject({ url: '/.well-known/jwks.json' })).json().keys[0];
    });
    after(() => t.close());

    const status = async (token: string) =>
      (await t.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${token}` } })).statusCode;

    it('accepts the genuine token (control)', async () => {
      assert.equal(await status(genuine), 200);
    });

    it('refuses alg "none"', async () => {
      assert.equal(await status(`${b64({ alg: 'none', typ: 'at+jwt', kid })}.${b64(claims)}.`), 401);
    });

    it('refuses HS256 keyed with the public key (PEM and JWK forms)', async () => {
      const { createPublicKey } = await import('node:crypto');
      const pem = createPublicKey({ key: publicJwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
      for (const secret of [pem, JSON.stringify(publicJwk), publicJwk.n!]) {
        const token = await new SignJWT(claims)
          .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid })
          .sign(new TextEncoder().encode(secret));
        assert.equal(await status(token), 401);
      }
    });

    it('refuses a tampered payload and a stripped signature', async () => {
      const [header, , signature] = genuine.split('.');
      assert.equal(await status(`${header}.${b64({ ...claims, roles: ['admin'] })}.${signature}`), 401);
      assert.equal(await status(`${header}.${genuine.split('.')[1]}.`), 401);
    });

    it('refuses an attacker key presented with our kid, as an embedded jwk, or through jku/x5u', async () => {
      const attackerJwk = await exportJWK(attacker.publicKey);
      const headers = [
        { alg: 'RS256', typ: 'at+jwt', kid },
        { alg: 'RS256', typ: 'at+jwt', kid, jwk: attackerJwk },
        { alg: 'RS256', typ: 'at+jwt', jwk: attackerJwk },
        { alg: 'RS256', typ: 'at+jwt', kid, jku: 'https://attacker.example/jwks.json' },
        { alg: 'RS256', typ: 'at+jwt', kid, x5u: 'https://attacker.example/cert.pem' },
        { alg: 'RS256', typ: 'at+jwt', kid: '../../etc/passwd' },
        { alg: 'RS256', typ: 'at+jwt', kid: "' OR 1=1 --" },
      ];
      for (const header of headers) {
        const token = await new SignJWT(claims).setProtectedHeader(header).sign(attacker.privateKey);
        assert.equal(await status(token), 401, JSON.stringify(header).slice(0, 80));
      }
    });

    it('refuses a token signed with our key but carrying a jku header or crit', async () => {
      // Re-sign is impossible without our key, so splice our genuine signature onto a changed header: still refused.
      const [, payload, signature] = genuine.split('.');
      for (const extra of [{ jku: 'https://attacker.example/jwks.json' }, { crit: ['exp'] }, { typ: 'JWT' }]) {
        const header = b64({ ...decodeProtectedHeader(genuine), ...extra });
        assert.equal(await status(`${header}.${payload}.${signature}`), 401);
      }
    });

    it('refuses tokens of the right key but the wrong issuer or audience', async () => {
      for (const env of [{ ISSUER: 'http://evil.test' }, { AUDIENCE: 'https://other-api.test' }] as Record<
        string,
        string
      >[]) {
        // Another app on the same database and key: genuine signatures, wrong claims.
        const other = buildApp(testConfig(t.databaseUrl, env));
        await other.ready();
        try {
          const login = await other.inject({
            method: 'POST',
            url: '/v1/users',
            payload: { username: `other-${Object.keys(env)[0]}`, password: 'long enough password' },
          });
          assert.equal(login.statusCode, 201);
          const token = (
            await other.inject({
              method: 'POST',
              url: '/oauth/token',
              payload: {
                grant_type: 'password',
                username: `other-${Object.keys(env)[0]}`,
                password: 'long enough password',
              },
            })
          ).json().access_token;
          assert.equal(decodeProtectedHeader(token).kid, kid, 'signed with the same key');
          assert.equal(await status(token), 401);
        } finally {
          await other.close();
        }
      }
    });
  });
}
