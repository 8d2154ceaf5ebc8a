import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { exportJWK, type JWTPayload, SignJWT } from 'jose';
import { freePort } from '../../../test/helpers/http.js';
import { buildDownstream, type DownstreamOptions, type VerifierVariant } from '../downstream.js';
import {
  AUDIENCE,
  inspect,
  type Login,
  type PublishedTestKey,
  publishTestKey,
  registerAndLogin,
  SERVICE_ID,
  SERVICE_SECRET,
  sleep,
  startTessera,
  type Tessera,
} from './tessera.js';

const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
const nowSeconds = () => Math.floor(Date.now() / 1000);
const VARIANTS: VerifierVariant[] = ['jose', 'fastify-jwt'];

/** What GET /v1/whoami answers (claims on 200, a message otherwise). */
interface WhoamiBody {
  sub?: string;
  username?: string;
  sid?: string;
  roles?: unknown;
  message?: string;
}

/** Calls the downstream service's protected route over HTTP. */
async function whoami(
  base: string,
  authorization?: string,
): Promise<{ status: number; challenge: string | null; body: WhoamiBody }> {
  const response = await fetch(`${base}/v1/whoami`, authorization ? { headers: { authorization } } : {});
  return {
    status: response.status,
    challenge: response.headers.get('www-authenticate'),
    body: (await response.json()) as WhoamiBody,
  };
}

describe('downstream verification kit against a live tessera', () => {
  let tessera: Tessera;
  let alice: Login;
  let testKey: PublishedTestKey;
  /** Claims of alice's genuine token: forged tokens copy them and change one thing. */
  let claims: JWTPayload;
  const started: Array<{ close(): Promise<unknown> }> = [];

  before(async () => {
    tessera = await startTessera();
    alice = await registerAndLogin(tessera.issuer);
    claims = inspect(alice.accessToken).claims;
    testKey = await publishTestKey(tessera);
  });
  after(async () => {
    for (const app of started) await app.close();
    await tessera.close();
  });

  /** Builds and starts a downstream service; returns its base URL. */
  async function downstream(options: Partial<DownstreamOptions> & { verifier: VerifierVariant }): Promise<string> {
    const { app } = buildDownstream({ issuer: tessera.issuer, audience: AUDIENCE, ...options });
    started.push(app);
    return app.listen({ host: '127.0.0.1', port: 0 });
  }

  for (const verifier of VARIANTS) {
    describe(`verifier: ${verifier}`, () => {
      let base: string;
      before(async () => {
        base = await downstream({ verifier });
      });

      it('accepts a token from a real login and hands the route its claims', async () => {
        const result = await whoami(base, `Bearer ${alice.accessToken}`);
        assert.equal(result.status, 200);
        assert.equal(result.body.sub, alice.userId);
        assert.equal(result.body.username, alice.username);
        assert.equal(result.body.sid, claims.sid);
        assert.deepEqual(result.body.roles, claims.roles);
      });

      it('accepts a token signed with the published test key (the control for the forgeries below)', async () => {
        const result = await whoami(base, `Bearer ${await testKey.sign(claims)}`);
        assert.equal(result.status, 200);
        assert.equal(result.body.sub, alice.userId);
      });

      it('answers a request without a token with a bare Bearer challenge', async () => {
        const result = await whoami(base);
        assert.equal(result.status, 401);
        assert.equal(result.challenge, 'Bearer');
      });

      it('refuses malformed and garbage tokens with error="invalid_token"', async () => {
        for (const authorization of [
          'Bearer',
          'Bearer ',
          'Bearer not-a-jwt',
          'Bearer a.b.c',
          `Bearer ${alice.accessToken}x`,
          `Basic ${Buffer.from('alice:secret').toString('base64')}`,
          alice.accessToken,
        ]) {
          const result = await whoami(base, authorization);
          assert.equal(result.status, 401, authorization.slice(0, 40));
          assert.equal(result.challenge, 'Bearer error="invalid_token"');
        }
      });

      it('refuses a token of another issuer or for another audience', async () => {
        for (const changed of [
          { iss: 'http://evil.test' },
          { iss: `${tessera.issuer}/` },
          { aud: 'other-api' },
          { aud: ['other-api', 'billing'] },
        ]) {
          const result = await whoami(base, `Bearer ${await testKey.sign({ ...claims, ...changed })}`);
          assert.equal(result.status, 401, JSON.stringify(changed));
          assert.equal(result.challenge, 'Bearer error="invalid_token"');
        }
      });

      it('refuses a JWT that is not typed at+jwt', async () => {
        for (const typ of ['JWT', 'jwt', 'id_token+jwt', undefined]) {
          const token = await testKey.sign(claims, { typ });
          assert.equal((await whoami(base, `Bearer ${token}`)).status, 401, String(typ));
        }
      });

      it('refuses alg "none"', async () => {
        for (const alg of ['none', 'None', 'NONE']) {
          const token = `${b64({ alg, typ: 'at+jwt', kid: testKey.kid })}.${b64(claims)}.`;
          assert.equal((await whoami(base, `Bearer ${token}`)).status, 401, alg);
        }
      });

      it('refuses HS256 keyed with the public key (PEM, JWK and modulus)', async () => {
        const jwks = (await (await fetch(`${tessera.issuer}/.well-known/jwks.json`)).json()) as {
          keys: Record<string, string>[];
        };
        for (const jwk of jwks.keys) {
          const pem = createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();
          for (const secret of [pem, JSON.stringify(jwk), String(jwk.n)]) {
            const token = await new SignJWT(claims)
              .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: jwk.kid })
              .sign(new TextEncoder().encode(secret));
            assert.equal((await whoami(base, `Bearer ${token}`)).status, 401);
          }
        }
      });

      it('refuses an attacker key presented with our kid, embedded, or through jku/x5u', async () => {
        const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 });
        const attackerJwk = await exportJWK(attacker.publicKey);
        const { kid } = inspect(alice.accessToken);
        for (const header of [
          { kid },
          { kid: testKey.kid },
          { kid, jwk: attackerJwk },
          { jwk: attackerJwk },
          { kid, jku: 'http://127.0.0.1:1/jwks.json' },
          { kid, x5u: 'http://127.0.0.1:1/cert.pem' },
          { kid: '../../.well-known/jwks.json' },
        ]) {
          const token = await new SignJWT(claims)
            .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', ...header })
            .sign(attacker.privateKey);
          assert.equal((await whoami(base, `Bearer ${token}`)).status, 401, JSON.stringify(header).slice(0, 60));
        }
      });

      it('refuses jku, jwk, x5u and crit headers even on a genuine signature of a published key', async () => {
        for (const extra of [
          { jku: `${tessera.issuer}/.well-known/jwks.json` },
          { x5u: `${tessera.issuer}/cert.pem` },
          { crit: ['exp'] },
        ]) {
          const token = await testKey.sign(claims, extra);
          assert.equal((await whoami(base, `Bearer ${token}`)).status, 401, Object.keys(extra)[0]);
        }
      });

      it('refuses a tampered payload', async () => {
        const [header, , signature] = alice.accessToken.split('.');
        const tampered = `${header}.${b64({ ...claims, roles: ['admin'] })}.${signature}`;
        assert.equal((await whoami(base, `Bearer ${tampered}`)).status, 401);
      });

      it('allows 30 s of clock skew on exp, and no more', async () => {
        const now = nowSeconds();
        const within = await testKey.sign({ ...claims, iat: now - 300, exp: now - 10 });
        assert.equal((await whoami(base, `Bearer ${within}`)).status, 200, 'expired 10 s ago: within the leeway');
        const beyond = await testKey.sign({ ...claims, iat: now - 300, exp: now - 60 });
        const result = await whoami(base, `Bearer ${beyond}`);
        assert.equal(result.status, 401, 'expired 60 s ago');
        assert.equal(result.challenge, 'Bearer error="invalid_token"');
        const notYet = await testKey.sign({ ...claims, nbf: now + 120 });
        assert.equal((await whoami(base, `Bearer ${notYet}`)).status, 401, 'not valid for two minutes');
      });

      it('refuses a token without the claims the revocation check needs', async () => {
        for (const name of ['sid', 'iat', 'sub', 'exp']) {
          const { [name]: _dropped, ...rest } = claims;
          assert.equal((await whoami(base, `Bearer ${await testKey.sign(rest)}`)).status, 401, name);
        }
      });

      it('refetches the JWKS for an unknown kid at most once per cooldown', async () => {
        const guarded = await downstream({ verifier, jwksCooldownSeconds: 60 });
        // Warm the cache with a genuine token, then send forged kids.
        assert.equal((await whoami(guarded, `Bearer ${alice.accessToken}`)).status, 200);
        const fetchesBefore = tessera.seen.filter((request) => request.path === '/.well-known/jwks.json').length;
        const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 });
        for (let i = 0; i < 8; i += 1) {
          const token = await new SignJWT(claims)
            .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid: `forged-${i}` })
            .sign(attacker.privateKey);
          assert.equal((await whoami(guarded, `Bearer ${token}`)).status, 401);
        }
        const fetches = tessera.seen.filter((request) => request.path === '/.well-known/jwks.json').length;
        // The fastify-jwt variant also reads the kid list once after a miss, so that a
        // genuine key not cached yet is not caught by the cooldown.
        const allowed = verifier === 'fastify-jwt' ? 2 : 1;
        assert.ok(fetches - fetchesBefore <= allowed, `${fetches - fetchesBefore} JWKS fetches for 8 forged kids`);
      });

      it('verifies tokens of a key tessera rotated to after the JWKS was cached (unknown kid: refetch)', async () => {
        const store = tessera.app.keyStore;
        // A key may already be waiting (the imported test key): let it take over first,
        // so that the rotation below creates a key no verifier has seen.
        await sleep(1100);
        await store.maintain();

        const rotating = await downstream({ verifier, jwksCooldownSeconds: 1, jwksCacheSeconds: 300 });
        const before = await registerAndLogin(tessera.issuer);
        assert.equal((await whoami(rotating, `Bearer ${before.accessToken}`)).status, 200, 'JWKS now cached');

        const rotation = await store.rotate();
        assert.equal(rotation.created, true);
        await sleep(Math.max(0, rotation.activatesAt.getTime() - Date.now()) + 1100);
        await store.maintain();
        assert.equal(store.currentKid, rotation.kid, 'the new key signs');

        const afterRotation = await registerAndLogin(tessera.issuer);
        assert.equal(inspect(afterRotation.accessToken).kid, rotation.kid);
        const result = await whoami(rotating, `Bearer ${afterRotation.accessToken}`);
        assert.equal(result.status, 200, 'a token of the new key verifies');
        assert.equal(result.body.sub, afterRotation.userId);
        assert.equal(
          (await whoami(rotating, `Bearer ${before.accessToken}`)).status,
          200,
          'the retired key still does',
        );
      });

      it('answers 503, not 401, when the JWKS cannot be fetched', async () => {
        const port = await freePort();
        const { app } = buildDownstream({ issuer: `http://127.0.0.1:${port}`, audience: AUDIENCE, verifier });
        started.push(app);
        const unreachable = await app.listen({ host: '127.0.0.1', port: 0 });
        const token = await testKey.sign({ ...claims, iss: `http://127.0.0.1:${port}` });
        const response = await fetch(`${unreachable}/v1/whoami`, { headers: { authorization: `Bearer ${token}` } });
        assert.equal(response.status, 503);
        assert.ok(response.headers.get('retry-after'));
      });
    });
  }

  describe('server.ts', () => {
    let child: ChildProcess | null = null;
    after(async () => {
      if (child && child.exitCode === null) {
        child.kill('SIGKILL');
        await once(child, 'exit');
      }
    });

    it('serves the example from environment settings and stops on SIGTERM', async () => {
      const port = await freePort();
      const root = fileURLToPath(new URL('../../../', import.meta.url));
      const output: string[] = [];
      child = spawn(process.execPath, ['--import', 'tsx', 'examples/downstream/server.ts'], {
        cwd: root,
        env: {
          ...process.env,
          TESSERA_ISSUER: tessera.issuer,
          AUDIENCE,
          VERIFIER: 'fastify-jwt',
          TESSERA_SERVICE_ID: SERVICE_ID,
          TESSERA_SERVICE_SECRET: SERVICE_SECRET,
          PORT: String(port),
          LOG_LEVEL: 'warn',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout?.on('data', (chunk) => output.push(String(chunk)));
      child.stderr?.on('data', (chunk) => output.push(String(chunk)));
      const base = `http://127.0.0.1:${port}`;
      let health: { revocations?: { fresh?: boolean } } | null = null;
      for (let attempt = 0; attempt < 100 && health === null; attempt += 1) {
        health = await fetch(`${base}/healthz`).then(
          async (response) => (await response.json()) as { revocations?: { fresh?: boolean } },
          () => null,
        );
        if (health === null) await sleep(200);
      }
      assert.ok(health, `the server did not start: ${output.join('')}`);
      assert.equal(health.revocations?.fresh, true, 'the first revocation poll succeeded');

      const result = await whoami(base, `Bearer ${alice.accessToken}`);
      assert.equal(result.status, 200);
      assert.equal(result.body.sub, alice.userId);
      assert.equal((await whoami(base, 'Bearer nope')).status, 401);

      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      assert.equal(code, 0, output.join(''));
    });
  });
});
