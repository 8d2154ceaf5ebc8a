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
import type { FastifyInstance } from 'fastify';
import { decodeJwt, decodeProtectedHeader, exportJWK, SignJWT } from 'jose';
import { buildDownstream, type VerifierVariant } from '../../examples/downstream/downstream.js';
import { buildApp } from '../../src/app.js';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, testProviders } from '../helpers/databases.js';
import { freePort } from '../helpers/http.js';

/**
 * The forged tokens of forged-tokens.test.ts, played against the downstream
 * verification kit (examples/downstream, `buildDownstream`) in both its
 * variants, over real HTTP, with tessera itself live on loopback (on each
 * database) as the JWKS source. The downstream service verifies locally, so
 * what it cannot know (the session state) is not tested here; everything about
 * the token itself is.
 */
const AUDIENCE = 'orders-api';
const VARIANTS: VerifierVariant[] = ['jose', 'fastify-jwt'];

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

function signRs256(header: Record<string, unknown>, payload: Record<string, unknown>, key: KeyObject): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${rsaSign('sha256', Buffer.from(input), key).toString('base64url')}`;
}

async function whoami(base: string, token: string) {
  const res = await fetch(`${base}/v1/whoami`, { headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  return { status: res.status, challenge: res.headers.get('www-authenticate'), text };
}

for (const provider of testProviders()) {
  describe(`forged access tokens are refused by the downstream kit (tessera on ${provider})`, () => {
    let tessera: FastifyInstance;
    let issuer: string;
    let drop: () => Promise<void>;
    let genuine: string;
    let victimToken: string;
    let kid: string;
    let claims: Record<string, unknown>;
    let publicJwk: Record<string, string>;
    const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 });
    /** Imported into tessera's key store: a published key whose private half the test holds. */
    const trusted = generateKeyPairSync('rsa', { modulusLength: 2048 });
    let trustedKid: string;
    /** A whole other tessera with the same ISSUER and AUDIENCE, on its own database and keys. */
    let impostorToken: string;
    const downstreams: FastifyInstance[] = [];

    const login = async (app: FastifyInstance, username: string) => {
      const password = 'correct horse battery staple';
      const created = await app.inject({ method: 'POST', url: '/v1/users', payload: { username, password } });
      assert.equal(created.statusCode, 201, created.body);
      const res = await app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'password', username, password },
      });
      assert.equal(res.statusCode, 200, res.body);
      return res.json().access_token as string;
    };

    before(async () => {
      const database = await createTestDatabase(provider);
      drop = database.drop;
      const port = await freePort();
      issuer = `http://127.0.0.1:${port}`;
      tessera = buildApp(testConfig(database.url, { ISSUER: issuer, AUDIENCE }));
      await tessera.listen({ host: '127.0.0.1', port });
      genuine = await login(tessera, 'alice');
      victimToken = await login(tessera, 'victim');
      kid = String(decodeProtectedHeader(genuine).kid);
      claims = decodeJwt(genuine);
      publicJwk = (
        (await (await fetch(`${issuer}/.well-known/jwks.json`)).json()) as { keys: Record<string, string>[] }
      ).keys[0]!;
      trustedKid = (
        await tessera.keyStore.importPem(trusted.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString())
      ).kid;

      const impostorDb = await createTestDatabase('sqlite');
      const impostor = buildApp(testConfig(impostorDb.url, { ISSUER: issuer, AUDIENCE }));
      await impostor.ready();
      try {
        impostorToken = await login(impostor, 'alice');
      } finally {
        await impostor.close();
        await impostorDb.drop();
      }
    });
    after(async () => {
      for (const app of downstreams) await app.close();
      await tessera?.close();
      await drop?.();
    });

    const fresh = (overrides: Record<string, unknown> = {}): Record<string, unknown> => {
      const now = Math.floor(Date.now() / 1000);
      return { ...claims, iat: now, exp: now + 600, jti: randomUUID(), ...overrides };
    };
    const trustedHeader = () => ({ alg: 'RS256', typ: 'at+jwt', kid: trustedKid });
    const byTrusted = (overrides: Record<string, unknown> = {}, header: Record<string, unknown> = {}) =>
      signRs256({ ...trustedHeader(), ...header }, fresh(overrides), trusted.privateKey);

    /** Every forgery of forged-tokens.test.ts that concerns the token itself. */
    async function forgeries(): Promise<Array<[string, string]>> {
      const out: Array<[string, string]> = [];
      const [gHeader, gPayload, gSignature] = genuine.split('.');
      // alg none
      for (const alg of ['none', 'None', 'NONE']) {
        out.push([`alg ${alg}`, `${b64({ alg, typ: 'at+jwt', kid })}.${b64(claims)}.`]);
        out.push([`alg ${alg} + signature`, `${b64({ alg, typ: 'at+jwt', kid })}.${b64(claims)}.${gSignature}`]);
      }
      // HS256 keyed with the public key
      const publicKey = createPublicKey({ key: publicJwk, format: 'jwk' });
      const pem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
      for (const [form, secret] of [
        ['pem', new TextEncoder().encode(pem)],
        ['jwk json', new TextEncoder().encode(JSON.stringify(publicJwk))],
        ['n', new TextEncoder().encode(publicJwk.n!)],
        ['n bytes', Buffer.from(publicJwk.n!, 'base64url')],
      ] as Array<[string, Uint8Array]>) {
        const token = await new SignJWT(fresh()).setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid }).sign(secret);
        out.push([`HS256 keyed with ${form}`, token]);
      }
      // tampered payload, stripped signature
      out.push(['sub changed', `${gHeader}.${b64({ ...claims, sub: decodeJwt(victimToken).sub })}.${gSignature}`]);
      out.push(['roles changed', `${gHeader}.${b64({ ...claims, roles: ['admin'] })}.${gSignature}`]);
      out.push(['stripped signature', `${gHeader}.${gPayload}.`]);
      out.push(["another token's signature", `${gHeader}.${gPayload}.${victimToken.split('.')[2]}`]);
      // attacker keys
      const attackerJwk = await exportJWK(attacker.publicKey);
      for (const header of [
        { kid },
        { kid: trustedKid },
        { kid, jwk: attackerJwk },
        { jwk: attackerJwk },
        { kid, jku: 'https://attacker.example/jwks.json' },
        { kid, x5u: 'https://attacker.example/cert.pem' },
        { kid, x5c: ['MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA'] },
        { kid: '../../etc/passwd' },
        { kid: "' OR 1=1 --" },
      ]) {
        out.push([
          `attacker key ${JSON.stringify(header).slice(0, 60)}`,
          signRs256({ alg: 'RS256', typ: 'at+jwt', ...header }, fresh(), attacker.privateKey),
        ]);
      }
      // forbidden headers under a signature that verifies
      for (const extra of [
        { jwk: attackerJwk },
        { jku: `${issuer}/.well-known/jwks.json` },
        { jku: 'https://attacker.example/jwks.json' },
        { x5u: 'https://attacker.example/cert.pem' },
        { x5c: ['MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA'] },
        { crit: ['exp'] },
        { crit: ['x-ext'], 'x-ext': true },
      ]) {
        out.push([`verifying token with ${Object.keys(extra).join(',')}`, byTrusted({}, extra)]);
      }
      // kid oddities under our trusted key's signature
      for (const badKid of ['../../etc/passwd', "' OR 1=1 --", '', 'x'.repeat(5000), 1, null, [trustedKid]]) {
        out.push([`kid ${JSON.stringify(badKid).slice(0, 40)}`, byTrusted({}, { kid: badKid })]);
      }
      const { kid: _noKid, ...noKid } = trustedHeader();
      out.push(['no kid', signRs256(noKid, fresh(), trusted.privateKey)]);
      // typ
      for (const typ of ['JWT', 'jwt', 'application/jwt', '', 'id+jwt'])
        out.push([`typ ${typ}`, byTrusted({}, { typ })]);
      const { typ: _noTyp, ...noTyp } = trustedHeader();
      out.push(['no typ', signRs256(noTyp, fresh(), trusted.privateKey)]);
      // other RSA algorithms with the right key
      for (const alg of ['RS384', 'RS512', 'PS256']) {
        out.push([
          `alg ${alg}`,
          await new SignJWT(fresh()).setProtectedHeader({ ...trustedHeader(), alg }).sign(trusted.privateKey),
        ]);
      }
      const input = `${b64(trustedHeader())}.${b64(fresh())}`;
      const pss = rsaSign('sha256', Buffer.from(input), {
        key: trusted.privateKey,
        padding: constants.RSA_PKCS1_PSS_PADDING,
      }).toString('base64url');
      out.push(['PSS signature under RS256', `${input}.${pss}`]);
      // iss, aud
      for (const changed of [
        { iss: 'http://evil.test' },
        { iss: `${issuer}/` },
        { aud: 'other-api' },
        { aud: ['other-api'] },
        { aud: [] },
      ]) {
        out.push([JSON.stringify(changed), byTrusted(changed)]);
      }
      // missing claims, claims of the wrong type
      for (const claim of ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'sid']) {
        const { [claim]: _omitted, ...rest } = fresh();
        out.push([`without ${claim}`, signRs256(trustedHeader(), rest, trusted.privateKey)]);
      }
      for (const changed of [
        { sid: 123 },
        { sid: null },
        { sub: { a: 1 } },
        { iat: 'x' },
        { exp: String(Date.now()) },
      ]) {
        out.push([`claim type ${JSON.stringify(changed)}`, byTrusted(changed)]);
      }
      // expiry, nbf (well beyond the kit's 30 s clock tolerance)
      const now = Math.floor(Date.now() / 1000);
      out.push(['expired an hour ago', byTrusted({ iat: now - 7200, exp: now - 3600 })]);
      out.push(['nbf in an hour', byTrusted({ nbf: now + 3600 })]);
      // a genuine token of another tessera that claims our issuer
      out.push(['impostor tessera with the same ISSUER', impostorToken]);
      return out;
    }

    for (const verifier of VARIANTS) {
      describe(`verifier: ${verifier}`, () => {
        let base: string;
        before(async () => {
          const { app } = buildDownstream({ issuer, audience: AUDIENCE, verifier, jwksCooldownSeconds: 1 });
          downstreams.push(app);
          base = await app.listen({ host: '127.0.0.1', port: 0 });
        });

        it('accepts the genuine token and a token of the published test key (controls)', async () => {
          assert.equal((await whoami(base, genuine)).status, 200);
          const res = await whoami(base, byTrusted());
          assert.equal(res.status, 200, res.text);
          assert.equal(JSON.parse(res.text).sub, claims.sub);
        });

        it('refuses every forgery with 401 and error="invalid_token", never a 5xx', async () => {
          const list = await forgeries();
          assert.ok(list.length > 60, `${list.length} forgeries`);
          for (const [label, token] of list) {
            const res = await whoami(base, token);
            assert.equal(res.status, 401, `${label}: ${res.status} ${res.text.slice(0, 200)}`);
            assert.match(String(res.challenge), /^Bearer .*error="invalid_token"/, `${label}: ${res.challenge}`);
            assert.equal(typeof JSON.parse(res.text).message, 'string', label);
          }
        });

        it('still accepts the genuine token afterwards (no forgery poisoned its key cache)', async () => {
          assert.equal((await whoami(base, genuine)).status, 200);
          assert.equal((await whoami(base, byTrusted())).status, 200);
        });
      });
    }

    for (const verifier of VARIANTS) {
      it(`${verifier}: a token with an unknown kid does not lock genuine tokens out of a fresh downstream`, async () => {
        const { app } = buildDownstream({ issuer, audience: AUDIENCE, verifier });
        downstreams.push(app);
        const base = await app.listen({ host: '127.0.0.1', port: 0 });
        // A well-formed kid that tessera never published, sent before any genuine token.
        const forged = signRs256(
          { alg: 'RS256', typ: 'at+jwt', kid: 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
          fresh(),
          attacker.privateKey,
        );
        assert.equal((await whoami(base, forged)).status, 401);
        const res = await whoami(base, genuine);
        assert.equal(res.status, 200, `the genuine token right after a forged kid: ${res.status} ${res.text}`);
      });
    }

    describe('a key revoked at tessera', () => {
      it('is refused by a fresh downstream at once, and by a running one once its JWKS cache expires', async () => {
        const running = buildDownstream({ issuer, audience: AUDIENCE, verifier: 'jose', jwksCacheSeconds: 1 });
        downstreams.push(running.app);
        const runningBase = await running.app.listen({ host: '127.0.0.1', port: 0 });
        const token = byTrusted();
        assert.equal((await whoami(runningBase, token)).status, 200, 'accepted before the revocation');

        assert.equal((await tessera.keyStore.revoke(trustedKid)).revoked, true);

        for (const verifier of VARIANTS) {
          const { app } = buildDownstream({ issuer, audience: AUDIENCE, verifier });
          downstreams.push(app);
          const base = await app.listen({ host: '127.0.0.1', port: 0 });
          // The genuine token first: see the lock-out test below for the other order.
          assert.equal((await whoami(base, genuine)).status, 200, `fresh ${verifier}: the current key still verifies`);
          const res = await whoami(base, token);
          assert.equal(res.status, 401, `fresh ${verifier} downstream: ${res.text}`);
          assert.match(String(res.challenge), /error="invalid_token"/);
        }

        // The running one cached the key for jwksCacheSeconds (the README's documented delay).
        const deadline = Date.now() + 5000;
        let status = 200;
        while (Date.now() < deadline && status === 200) {
          await new Promise((resolve) => setTimeout(resolve, 250));
          status = (await whoami(runningBase, token)).status;
        }
        assert.equal(status, 401, 'the running downstream still accepts the revoked key after 5 s');
        assert.equal((await whoami(runningBase, token)).status, 401);
      });
    });
  });
}
