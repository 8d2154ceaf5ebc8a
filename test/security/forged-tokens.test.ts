import assert from 'node:assert/strict';
import {
  constants,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  randomUUID,
  sign as rsaSign,
} from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { decodeJwt, decodeProtectedHeader, exportJWK, SignJWT } from 'jose';
import { buildApp } from '../../src/app.js';
import { registerAndLogin, startTestApp, type TestApp, testConfig } from '../helpers/app.js';
import { testProviders } from '../helpers/databases.js';

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/**
 * Signs a compact JWS by hand with node:crypto (RSASSA-PKCS1-v1_5 / SHA-256),
 * so that any header at all can be produced, including ones jose refuses to
 * sign (`crit` with unknown members, no `typ`, `kid` of the wrong type).
 */
function signRs256(header: Record<string, unknown>, payload: Record<string, unknown>, key: KeyObject): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${rsaSign('sha256', Buffer.from(input), key).toString('base64url')}`;
}

/** Asserts the RFC 6750 §3.1 refusal: 401, a Bearer challenge with invalid_token, a problem body. */
function assertInvalidToken(res: LightMyRequestResponse, label: string): void {
  assert.equal(res.statusCode, 401, `${label}: ${res.statusCode} ${res.body.slice(0, 200)}`);
  const challenge = String(res.headers['www-authenticate'] ?? '');
  assert.match(challenge, /^Bearer realm="tessera"/, `${label}: challenge ${challenge}`);
  assert.match(challenge, /(^|[ ,])error="invalid_token"/, `${label}: challenge ${challenge}`);
  assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8', label);
  const body = res.json();
  assert.equal(body.status, 401, label);
  assert.equal(body.code, 'unauthorized', label);
  assert.equal(typeof body.title, 'string', label);
}

for (const provider of testProviders()) {
  describe(`forged access tokens are refused by /v1/me (${provider})`, () => {
    let t: TestApp;
    let genuine: string;
    let kid: string;
    let claims: Record<string, unknown>;
    let victim: { userId: string; access_token: string };
    let publicJwk: Record<string, string>;
    const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 });
    /**
     * A key tessera trusts whose private half the test holds: imported into the
     * key store (`tessera keys import`), it is published as the `next` key. With
     * it, each forged token below differs from an accepted one by exactly one
     * thing, under a signature that verifies.
     */
    const trusted = generateKeyPairSync('rsa', { modulusLength: 2048 });
    let trustedKid: string;

    before(async () => {
      t = await startTestApp(provider);
      const user = await registerAndLogin(t.app);
      victim = await registerAndLogin(t.app);
      genuine = user.access_token;
      kid = String(decodeProtectedHeader(genuine).kid);
      claims = decodeJwt(genuine);
      publicJwk = (await t.app.inject({ url: '/.well-known/jwks.json' })).json().keys[0];
      assert.equal(publicJwk.kid, kid);
      const pem = trusted.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      trustedKid = (await t.app.keyStore.importPem(pem)).kid;
    });
    after(() => t.close());

    const me = (token: string) => t.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${token}` } });
    const refused = async (token: string, label: string) => assertInvalidToken(await me(token), label);

    /** Claims of a fresh, otherwise valid token for the genuine token's user and session. */
    const fresh = (overrides: Record<string, unknown> = {}): Record<string, unknown> => {
      const now = Math.floor(Date.now() / 1000);
      return { ...claims, iat: now, exp: now + 600, jti: randomUUID(), ...overrides };
    };
    const trustedHeader = () => ({ alg: 'RS256', typ: 'at+jwt', kid: trustedKid });

    it('accepts the genuine token and a well-formed token of the trusted test key (controls)', async () => {
      assert.equal((await me(genuine)).statusCode, 200);
      const res = await me(signRs256(trustedHeader(), fresh(), trusted.privateKey));
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json().id, claims.sub);
    });

    it('refuses alg "none" in any spelling, with or without a signature part', async () => {
      const [, , signature] = genuine.split('.');
      for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
        for (const header of [{ alg, typ: 'at+jwt', kid }, { alg, typ: 'at+jwt' }, { alg }]) {
          await refused(`${b64(header)}.${b64(claims)}.`, `alg ${JSON.stringify(header)}`);
          await refused(`${b64(header)}.${b64(claims)}.${signature}`, `alg ${alg} + signature`);
        }
      }
    });

    it('refuses HS256/384/512 keyed with the public key (PEM, JWK, n, DER forms)', async () => {
      const publicKey = createPublicKey({ key: publicJwk, format: 'jwk' });
      const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
      const pkcs1 = publicKey.export({ type: 'pkcs1', format: 'pem' }).toString();
      const secrets: Array<[string, Uint8Array]> = [
        ['spki pem', new TextEncoder().encode(pem)],
        ['spki pem trimmed', new TextEncoder().encode(pem.trim())],
        ['pkcs1 pem', new TextEncoder().encode(pkcs1)],
        ['jwks json', new TextEncoder().encode(JSON.stringify(publicJwk))],
        ['jwk n (text)', new TextEncoder().encode(publicJwk.n!)],
        ['jwk n (bytes)', Buffer.from(publicJwk.n!, 'base64url')],
        ['spki der', publicKey.export({ type: 'spki', format: 'der' })],
      ];
      for (const alg of ['HS256', 'HS384', 'HS512']) {
        for (const [form, secret] of secrets) {
          for (const header of [
            { alg, typ: 'at+jwt', kid },
            { alg, typ: 'at+jwt' },
          ]) {
            const token = await new SignJWT(fresh()).setProtectedHeader(header).sign(secret);
            await refused(token, `${alg} keyed with ${form}`);
          }
        }
      }
    });

    it('refuses a tampered payload under the genuine signature (sub, roles, exp changed)', async () => {
      const [header, , signature] = genuine.split('.');
      for (const changed of [
        { sub: victim.userId },
        { roles: ['admin'] },
        { exp: Number(claims.exp) + 3600 },
        { username: 'admin' },
      ]) {
        await refused(`${header}.${b64({ ...claims, ...changed })}.${signature}`, `tampered ${Object.keys(changed)}`);
      }
      // Same claims, re-serialized differently (key order): the signature covers bytes, not meaning.
      const reordered = Object.fromEntries(Object.entries(claims).reverse());
      await refused(`${header}.${b64(reordered)}.${signature}`, 'reordered payload');
    });

    it('refuses a stripped, truncated or foreign signature', async () => {
      const [header, payload, signature] = genuine.split('.');
      await refused(`${header}.${payload}.`, 'stripped signature');
      await refused(`${header}.${payload}`, 'two segments');
      await refused(`${header}.${payload}.${signature!.slice(0, -4)}`, 'truncated signature');
      const victimSignature = victim.access_token.split('.')[2];
      await refused(`${header}.${payload}.${victimSignature}`, "another token's signature");
      const flipped = Buffer.from(signature!, 'base64url');
      flipped[10]! ^= 0x01;
      await refused(`${header}.${payload}.${flipped.toString('base64url')}`, 'bit-flipped signature');
    });

    it('refuses an attacker key presented with our kid, as an embedded jwk, or through jku/x5u/x5c', async () => {
      const attackerJwk = await exportJWK(attacker.publicKey);
      const headers = [
        { alg: 'RS256', typ: 'at+jwt', kid },
        { alg: 'RS256', typ: 'at+jwt', kid: trustedKid },
        { alg: 'RS256', typ: 'at+jwt', kid, jwk: attackerJwk },
        { alg: 'RS256', typ: 'at+jwt', jwk: attackerJwk },
        { alg: 'RS256', typ: 'at+jwt', jwk: { ...attackerJwk, kid } },
        { alg: 'RS256', typ: 'at+jwt', kid, jku: 'https://attacker.example/jwks.json' },
        { alg: 'RS256', typ: 'at+jwt', jku: 'https://attacker.example/jwks.json' },
        { alg: 'RS256', typ: 'at+jwt', kid, x5u: 'https://attacker.example/cert.pem' },
        { alg: 'RS256', typ: 'at+jwt', kid, x5c: ['MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA'] },
        { alg: 'RS256', typ: 'at+jwt' },
      ];
      for (const header of headers) {
        await refused(signRs256(header, fresh(), attacker.privateKey), `attacker key ${JSON.stringify(header)}`);
      }
    });

    it('refuses jwk, jku, x5u, x5c and crit headers even under a signature that verifies', async () => {
      const attackerJwk = await exportJWK(attacker.publicKey);
      for (const extra of [
        { jwk: attackerJwk },
        { jku: 'https://attacker.example/jwks.json' },
        { jku: 'http://tessera.test/.well-known/jwks.json' },
        { x5u: 'https://attacker.example/cert.pem' },
        { x5c: ['MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA'] },
        { crit: ['exp'] },
        { crit: ['x-tessera-ext'], 'x-tessera-ext': true },
        { crit: [] },
      ]) {
        await refused(signRs256({ ...trustedHeader(), ...extra }, fresh(), trusted.privateKey), JSON.stringify(extra));
      }
      // And spliced onto the service's own signature: the header is signed too.
      const [, payload, signature] = genuine.split('.');
      for (const extra of [{ jku: 'https://attacker.example/jwks.json' }, { crit: ['exp'] }, { typ: 'JWT' }]) {
        const header = b64({ ...decodeProtectedHeader(genuine), ...extra });
        await refused(`${header}.${payload}.${signature}`, `spliced ${JSON.stringify(extra)}`);
      }
    });

    it('refuses a kid with path traversal, SQL, or of the wrong type, and an absent kid', async () => {
      for (const badKid of [
        '../../etc/passwd',
        '../../../../../../dev/null',
        "' OR 1=1 --",
        `${kid}' OR '1'='1`,
        '"; DROP TABLE "SigningKey"; --',
        '%00',
        '',
        'x'.repeat(5000),
      ]) {
        await refused(signRs256({ ...trustedHeader(), kid: badKid }, fresh(), trusted.privateKey), `kid ${badKid}`);
        await refused(signRs256({ ...trustedHeader(), kid: badKid }, fresh(), attacker.privateKey), `kid ${badKid}`);
      }
      for (const badKid of [1, null, [trustedKid], { kid: trustedKid }, true]) {
        await refused(
          signRs256({ ...trustedHeader(), kid: badKid }, fresh(), trusted.privateKey),
          `kid ${JSON.stringify(badKid)}`,
        );
      }
      const { kid: _omitted, ...noKid } = trustedHeader();
      await refused(signRs256(noKid, fresh(), trusted.privateKey), 'no kid');
      // None of that did anything to the key set.
      assert.equal((await me(genuine)).statusCode, 200);
      assert.equal((await t.app.inject({ url: '/readyz' })).statusCode, 200);
    });

    it('refuses a wrong or missing typ, and an algorithm other than RS256 with the right key', async () => {
      // (RFC 9068 §4 also allows `application/at+jwt`; tessera never issues it, so no assertion on it either way.)
      for (const typ of ['JWT', 'jwt', 'application/jwt', 'JOSE', '', 'id+jwt', 'at+jwt ', 'dpop+jwt']) {
        await refused(signRs256({ ...trustedHeader(), typ }, fresh(), trusted.privateKey), `typ ${typ}`);
      }
      const { typ: _omitted, ...noTyp } = trustedHeader();
      await refused(signRs256(noTyp, fresh(), trusted.privateKey), 'no typ');
      // A JWT with the same key but another RSA algorithm: pinned to RS256.
      for (const alg of ['RS384', 'RS512', 'PS256']) {
        const token = await new SignJWT(fresh())
          .setProtectedHeader({ ...trustedHeader(), alg })
          .sign(trusted.privateKey);
        await refused(token, `alg ${alg}`);
      }
      // An RS256 header on a PS256 signature.
      const input = `${b64(trustedHeader())}.${b64(fresh())}`;
      const pss = rsaSign('sha256', Buffer.from(input), {
        key: trusted.privateKey,
        padding: constants.RSA_PKCS1_PSS_PADDING,
      }).toString('base64url');
      await refused(`${input}.${pss}`, 'PSS signature under RS256');
    });

    it('refuses a wrong issuer or audience under a signature that verifies', async () => {
      for (const changed of [
        { iss: 'http://evil.test' },
        { iss: 'http://tessera.test/' },
        { iss: 'HTTP://TESSERA.TEST' },
        { iss: ['http://tessera.test'] },
        { aud: 'https://other-api.test' },
        { aud: ['https://other-api.test'] },
        { aud: [] },
        { aud: 'https://api.example.test/' },
      ]) {
        await refused(signRs256(trustedHeader(), fresh(changed), trusted.privateKey), JSON.stringify(changed));
      }
    });

    it('refuses tokens missing a required claim', async () => {
      for (const claim of ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'sid']) {
        const { [claim]: _omitted, ...rest } = fresh();
        await refused(signRs256(trustedHeader(), rest, trusted.privateKey), `without ${claim}`);
      }
    });

    it('refuses an expired token and a token not yet valid (nbf in the future)', async () => {
      const now = Math.floor(Date.now() / 1000);
      const expired = await me(
        signRs256(trustedHeader(), fresh({ iat: now - 7200, exp: now - 3600 }), trusted.privateKey),
      );
      assertInvalidToken(expired, 'expired');
      assert.match(String(expired.headers['www-authenticate']), /expired/);
      await refused(
        signRs256(trustedHeader(), fresh({ iat: now - 100_000, exp: now - 86_400 }), trusted.privateKey),
        'long expired',
      );
      await refused(signRs256(trustedHeader(), fresh({ exp: 0 }), trusted.privateKey), 'exp 0');
      await refused(signRs256(trustedHeader(), fresh({ exp: String(now + 600) }), trusted.privateKey), 'exp string');
      await refused(signRs256(trustedHeader(), fresh({ nbf: now + 3600 }), trusted.privateKey), 'nbf in an hour');
      await refused(
        signRs256(trustedHeader(), fresh({ nbf: now + 86_400 * 365 }), trusted.privateKey),
        'nbf in a year',
      );
    });

    it("refuses a verifying token that names another user's id with the caller's session", async () => {
      // The session binds the token to its user: a valid signature alone does not make sub/sid pairs up.
      await refused(signRs256(trustedHeader(), fresh({ sub: victim.userId }), trusted.privateKey), 'sub swapped');
      await refused(signRs256(trustedHeader(), fresh({ sid: randomUUID() }), trusted.privateKey), 'unknown sid');
      await refused(signRs256(trustedHeader(), fresh({ sid: "' OR 1=1 --" }), trusted.privateKey), 'sid with SQL');
      const victimSid = decodeJwt(victim.access_token).sid;
      await refused(signRs256(trustedHeader(), fresh({ sid: victimSid }), trusted.privateKey), "victim's sid");
    });

    // Hardening (only reachable with a signature that verifies, i.e. a key tessera trusts): claims
    // of the wrong JSON type must be refused like any other bad token, not crash the request.
    it('refuses a verifying token whose sid is not a string (401, not 500)', async () => {
      for (const sid of [123, null, { id: 'x' }, ['x'], true]) {
        await refused(signRs256(trustedHeader(), fresh({ sid }), trusted.privateKey), `sid ${JSON.stringify(sid)}`);
      }
    });

    it('refuses a verifying token whose iat is not a NumericDate (RFC 7519 §4.1.6)', async () => {
      for (const iat of ['x', null, [1], { n: 1 }]) {
        await refused(signRs256(trustedHeader(), fresh({ iat }), trusted.privateKey), `iat ${JSON.stringify(iat)}`);
      }
    });

    it('refuses tokens of the right key but the wrong issuer or audience, issued by tessera itself', async () => {
      for (const env of [{ ISSUER: 'http://evil.test' }, { AUDIENCE: 'https://other-api.test' }] as Record<
        string,
        string
      >[]) {
        // Another app on the same database and key: genuine signatures, wrong claims.
        const other = buildApp(testConfig(t.databaseUrl, env));
        await other.ready();
        try {
          const username = `other-${Object.keys(env)[0]}`;
          const created = await other.inject({
            method: 'POST',
            url: '/v1/users',
            payload: { username, password: 'long enough password' },
          });
          assert.equal(created.statusCode, 201);
          const token = (
            await other.inject({
              method: 'POST',
              url: '/oauth/token',
              payload: { grant_type: 'password', username, password: 'long enough password' },
            })
          ).json().access_token;
          assert.equal(decodeProtectedHeader(token).kid, kid, 'signed with the same key');
          await refused(token, JSON.stringify(env));
        } finally {
          await other.close();
        }
      }
    });

    it('never answered 500 and still serves the genuine token', async () => {
      assert.equal((await me(genuine)).statusCode, 200);
      assert.equal((await t.app.inject({ url: '/readyz' })).statusCode, 200);
    });
  });

  describe(`tokens of a revoked signing key are refused by /v1/me (${provider})`, () => {
    let t: TestApp;
    before(async () => {
      t = await startTestApp(provider);
    });
    after(() => t.close());

    const me = (token: string) => t.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${token}` } });
    const jwksKids = async (): Promise<string[]> =>
      (await t.app.inject({ url: '/.well-known/jwks.json' })).json().keys.map((key: { kid: string }) => key.kid);

    it('a revoked `next` key stops verifying at once, the current key is unaffected', async () => {
      const user = await registerAndLogin(t.app);
      const claims = decodeJwt(user.access_token);
      const trusted = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const { kid } = await t.app.keyStore.importPem(
        trusted.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
      );
      const now = Math.floor(Date.now() / 1000);
      const token = signRs256(
        { alg: 'RS256', typ: 'at+jwt', kid },
        { ...claims, iat: now, exp: now + 600, jti: randomUUID() },
        trusted.privateKey,
      );
      assert.equal((await me(token)).statusCode, 200, 'accepted before the revocation');

      assert.deepEqual(await t.app.keyStore.revoke(kid), { revoked: true, replacement: null });
      assertInvalidToken(await me(token), 'token of the revoked next key');
      assert.ok(!(await jwksKids()).includes(kid), 'the revoked key left the JWKS');
      assert.equal((await me(user.access_token)).statusCode, 200, 'the current key still verifies');
    });

    it('the revoked current key: its tokens get 401, a replacement signs, new logins work', async () => {
      const user = await registerAndLogin(t.app);
      const oldKid = String(decodeProtectedHeader(user.access_token).kid);
      assert.equal((await me(user.access_token)).statusCode, 200);

      const result = await t.app.keyStore.revoke(oldKid);
      assert.equal(result.revoked, true);
      assert.ok(result.replacement && result.replacement !== oldKid);

      assertInvalidToken(await me(user.access_token), 'token of the revoked current key');
      assert.ok(!(await jwksKids()).includes(oldKid), 'the revoked key left the JWKS');

      // The refresh token is not signed by a key: the session survives and gets a token of the new key.
      const refreshed = await t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'refresh_token', refresh_token: user.refresh_token },
      });
      assert.equal(refreshed.statusCode, 200, refreshed.body);
      const newToken = refreshed.json().access_token;
      assert.equal(decodeProtectedHeader(newToken).kid, result.replacement);
      assert.equal((await me(newToken)).statusCode, 200);
      // The old token still fails after the key store reloads (an unknown kid triggers one).
      await t.app.keyStore.reload();
      assertInvalidToken(await me(user.access_token), 'after a reload');
    });

    it('a second instance on the same database refuses the revoked key after its reload', async () => {
      const user = await registerAndLogin(t.app);
      const kidBefore = String(decodeProtectedHeader(user.access_token).kid);
      const other = buildApp(testConfig(t.databaseUrl));
      await other.ready();
      try {
        const otherMe = () =>
          other.inject({ url: '/v1/me', headers: { authorization: `Bearer ${user.access_token}` } });
        assert.equal((await otherMe()).statusCode, 200);
        await t.app.keyStore.revoke(kidBefore);
        await other.keyStore.maintain();
        assertInvalidToken(await otherMe(), 'second instance after its maintenance pass');
      } finally {
        await other.close();
      }
    });
  });
}
