import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { decodeJwt, decodeProtectedHeader, SignJWT } from 'jose';
import { registerAndLogin, startTestApp, type TestApp, TestClock } from '../helpers/app.js';
import { testProviders } from '../helpers/databases.js';

const API_SECRET = 'api-secret-0123456789-abcdefghijklmnopqr';
// Characters that RFC 6749 §2.3.1 form-encoding changes: clients may send it either way.
const ODD_SECRET = 'p%40ss+word/with:colon-0123456789abcdef';
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
const API_AUTH = basic('api', API_SECRET);
const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
const form = (fields: Record<string, string>) => ({
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  payload: new URLSearchParams(fields).toString(),
});

for (const provider of testProviders()) {
  describe(`POST /oauth/introspect (${provider})`, () => {
    const clock = new TestClock();
    let t: TestApp;
    before(async () => {
      t = await startTestApp(provider, {
        env: { SERVICE_CREDENTIALS: `api:${API_SECRET},odd:${ODD_SECRET}` },
        now: clock.now,
      });
    });
    after(() => t.close());

    const introspect = async (token: string, extra: Record<string, string> = {}, authorization = API_AUTH) => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/oauth/introspect',
        headers: { authorization },
        payload: { token, ...extra },
      });
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.headers['cache-control'], 'no-store');
      return res.json();
    };
    const assertInactive = async (token: string, message?: string) =>
      assert.deepEqual(await introspect(token), { active: false }, message);
    const login = async (username: string, password: string) =>
      (
        await t.app.inject({
          method: 'POST',
          url: '/oauth/token',
          payload: { grant_type: 'password', username, password },
        })
      ).json() as { access_token: string; refresh_token: string };
    const refresh = (refreshToken: string) =>
      t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'refresh_token', refresh_token: refreshToken },
      });

    it('refuses a missing or wrong client with 401 invalid_client and a Basic challenge', async () => {
      const user = await registerAndLogin(t.app);
      const attempts: { headers?: Record<string, string>; payload: Record<string, string> }[] = [
        { payload: { token: user.access_token } },
        { headers: { authorization: basic('api', `${API_SECRET}x`) }, payload: { token: user.access_token } },
        { headers: { authorization: basic('api', ODD_SECRET) }, payload: { token: user.access_token } },
        { headers: { authorization: basic('nobody', API_SECRET) }, payload: { token: user.access_token } },
        { headers: { authorization: 'Basic' }, payload: { token: user.access_token } },
        { headers: { authorization: 'Basic ###' }, payload: { token: user.access_token } },
        { headers: { authorization: `Bearer ${user.access_token}` }, payload: { token: user.access_token } },
        { payload: { token: user.access_token, client_id: 'api' } },
        { payload: { token: user.access_token, client_id: 'api', client_secret: `${API_SECRET}x` } },
        { payload: { token: user.access_token, client_id: 'tessera', client_secret: API_SECRET } },
        { headers: { authorization: API_AUTH }, payload: { token: user.access_token, client_id: 'odd' } },
      ];
      for (const attempt of attempts) {
        const res = await t.app.inject({ method: 'POST', url: '/oauth/introspect', ...attempt });
        const label = JSON.stringify(attempt.headers ?? attempt.payload.client_id ?? null);
        assert.equal(res.statusCode, 401, label);
        assert.deepEqual(Object.keys(res.json()).sort(), ['error', 'error_description']);
        assert.equal(res.json().error, 'invalid_client', label);
        assert.equal(res.headers['www-authenticate'], 'Basic realm="tessera"', label);
        assert.equal(res.headers['cache-control'], 'no-store');
        assert.doesNotMatch(res.body, /active|secret-0123/);
      }
      // RFC 6749 §2.3: one authentication method per request.
      const both = await t.app.inject({
        method: 'POST',
        url: '/oauth/introspect',
        headers: { authorization: API_AUTH },
        payload: { token: user.access_token, client_id: 'api', client_secret: API_SECRET },
      });
      assert.equal(both.statusCode, 400);
      assert.equal(both.json().error, 'invalid_request');
    });

    it('accepts client_secret_basic (as sent or form-encoded) and client_secret_post, as form or JSON', async () => {
      const user = await registerAndLogin(t.app);
      const ok = (res: { statusCode: number; json(): { active?: boolean } }) => {
        assert.equal(res.statusCode, 200);
        assert.equal(res.json().active, true);
      };
      const formBody = form({ token: user.access_token });
      ok(
        await t.app.inject({
          method: 'POST',
          url: '/oauth/introspect',
          payload: formBody.payload,
          headers: { ...formBody.headers, authorization: API_AUTH },
        }),
      );
      ok(
        await t.app.inject({
          method: 'POST',
          url: '/oauth/introspect',
          ...form({ token: user.access_token, client_id: 'api', client_secret: API_SECRET }),
        }),
      );
      ok(
        await t.app.inject({
          method: 'POST',
          url: '/oauth/introspect',
          payload: { token: user.access_token, client_id: 'odd', client_secret: ODD_SECRET },
        }),
      );
      for (const authorization of [basic('odd', ODD_SECRET), basic('odd', encodeURIComponent(ODD_SECRET))]) {
        ok(
          await t.app.inject({
            method: 'POST',
            url: '/oauth/introspect',
            headers: { authorization },
            payload: { token: user.access_token },
          }),
        );
      }
      // With Basic, the body may still name the same client_id.
      ok(
        await t.app.inject({
          method: 'POST',
          url: '/oauth/introspect',
          headers: { authorization: API_AUTH },
          payload: { token: user.access_token, client_id: 'api' },
        }),
      );
    });

    it('describes a valid access token with exactly its claims', async () => {
      const user = await registerAndLogin(t.app);
      const claims = decodeJwt(user.access_token);
      const body = await introspect(user.access_token);
      assert.deepEqual(body, {
        active: true,
        token_type: 'Bearer',
        client_id: claims.client_id,
        username: user.username,
        sub: user.userId,
        aud: 'https://api.example.test',
        iss: 'http://tessera.test',
        exp: claims.exp,
        iat: claims.iat,
        jti: claims.jti,
        sid: claims.sid,
        roles: [],
      });
      // The hint is optional and cannot mislead: the two formats are distinct.
      assert.deepEqual(await introspect(user.access_token, { token_type_hint: 'refresh_token' }), body);
      assert.deepEqual(await introspect(user.access_token, { token_type_hint: 'access_token' }), body);
    });

    it('reports an expired access token as inactive', async () => {
      const user = await registerAndLogin(t.app);
      // The verifier uses the real clock (as for /v1/me): issue a token 16 minutes in the past.
      clock.advance(-16 * 60);
      const old = await login(user.username, user.password);
      clock.advance(16 * 60);
      await assertInactive(old.access_token);
    });

    it('reports access tokens of ended sessions, logged-out and disabled users as inactive', async () => {
      const user = await registerAndLogin(t.app);
      const laptop = await login(user.username, user.password);
      const phone = await login(user.username, user.password);
      await t.app.inject({
        method: 'DELETE',
        url: `/v1/sessions/${decodeJwt(laptop.access_token).sid}`,
        headers: { authorization: `Bearer ${user.access_token}` },
      });
      await assertInactive(laptop.access_token, 'session ended');
      assert.equal((await introspect(phone.access_token)).active, true);

      await t.app.inject({ method: 'POST', url: '/oauth/revoke', payload: { token: phone.refresh_token } });
      await assertInactive(phone.access_token, 'session revoked by its refresh token');

      await t.app.inject({
        method: 'DELETE',
        url: '/v1/sessions',
        headers: { authorization: `Bearer ${user.access_token}` },
      });
      await assertInactive(user.access_token, 'logged out everywhere');

      const other = await registerAndLogin(t.app);
      assert.ok(await t.app.services.users.disable(other.username));
      await assertInactive(other.access_token, 'user disabled');
      await assertInactive(other.refresh_token, 'user disabled (refresh)');
    });

    it('reports tampered and forged access tokens as inactive', async () => {
      const user = await registerAndLogin(t.app);
      const claims = decodeJwt(user.access_token);
      const kid = String(decodeProtectedHeader(user.access_token).kid);
      const [header, payload, signature] = user.access_token.split('.');
      const attacker = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const forged = await new SignJWT({ ...claims, roles: ['admin'] })
        .setProtectedHeader({ alg: 'RS256', typ: 'at+jwt', kid })
        .sign(attacker.privateKey);
      for (const token of [
        `${header}.${b64({ ...claims, roles: ['admin'] })}.${signature}`,
        `${header}.${payload}.`,
        `${b64({ alg: 'none', typ: 'at+jwt', kid })}.${payload}.`,
        `${b64({ alg: 'RS256', typ: 'JWT', kid })}.${payload}.${signature}`,
        forged,
        `${user.access_token}x`,
      ]) {
        await assertInactive(token, token.slice(0, 40));
      }
      // None of that harmed the genuine token.
      assert.equal((await introspect(user.access_token)).active, true);
    });

    it('describes the current refresh token without rotating it', async () => {
      const user = await registerAndLogin(t.app);
      const sid = decodeJwt(user.access_token).sid;
      const body = await introspect(user.refresh_token, { token_type_hint: 'refresh_token' });
      assert.deepEqual(Object.keys(body).sort(), [
        'active',
        'client_id',
        'exp',
        'sid',
        'sub',
        'token_type',
        'username',
      ]);
      assert.deepEqual(
        { ...body, exp: undefined },
        {
          active: true,
          token_type: 'refresh_token',
          client_id: 'tessera',
          username: user.username,
          sub: user.userId,
          sid,
          exp: undefined,
        },
      );
      assert.equal(body.exp, Math.floor(clock.ms / 1000) + t.config.refreshTokenTtl);
      assert.deepEqual(await introspect(user.refresh_token, { token_type_hint: 'access_token' }), body);

      // Introspecting twice changed nothing: the token rotates once, at the token endpoint.
      const rotated = await refresh(user.refresh_token);
      assert.equal(rotated.statusCode, 200);
      const successor = rotated.json().refresh_token;
      assert.notEqual(successor, user.refresh_token);
      // The rotated token is no longer active (even inside the reuse grace window)...
      await assertInactive(user.refresh_token, 'rotated');
      assert.equal((await introspect(successor)).active, true);
      // ...and introspecting it was not a replay: the session lives on.
      clock.advance(t.config.refreshReuseGrace + 1);
      await assertInactive(user.refresh_token, 'rotated, after the grace window');
      const next = await refresh(successor);
      assert.equal(next.statusCode, 200, 'the session was not revoked by introspection');
      assert.equal((await introspect(next.json().refresh_token)).active, true);
    });

    it('reports revoked and expired refresh tokens as inactive', async () => {
      const revoked = await registerAndLogin(t.app);
      await t.app.inject({ method: 'POST', url: '/oauth/revoke', payload: { token: revoked.refresh_token } });
      await assertInactive(revoked.refresh_token, 'revoked');

      const idle = await registerAndLogin(t.app);
      clock.advance(t.config.refreshTokenTtl);
      await assertInactive(idle.refresh_token, 'idle expiry');
    });

    it('reports garbage as inactive', async () => {
      const user = await registerAndLogin(t.app);
      const parts = Buffer.from(user.refresh_token, 'base64url');
      const flipped = Buffer.from(parts);
      flipped[flipped.length - 1] = (flipped.at(-1) ?? 0) ^ 1;
      const otherGeneration = Buffer.from(parts);
      otherGeneration.writeUInt32BE(7, 16);
      for (const token of [
        '',
        'garbage',
        'a.b.c',
        '...',
        randomBytes(52).toString('base64url'),
        flipped.toString('base64url'),
        otherGeneration.toString('base64url'),
        `${user.refresh_token}=`,
        'ä'.repeat(70),
        'x'.repeat(20_000),
        `${'x'.repeat(10_000)}.${'y'.repeat(10_000)}.z`,
      ]) {
        await assertInactive(token, token.slice(0, 30));
      }
      assert.equal((await introspect(user.refresh_token)).active, true);
    });

    it('answers 400 invalid_request without a token', async () => {
      for (const payload of [{}, { token: 42 }, { token_type_hint: 'access_token' }]) {
        const res = await t.app.inject({
          method: 'POST',
          url: '/oauth/introspect',
          headers: { authorization: API_AUTH },
          payload,
        });
        assert.equal(res.statusCode, 400, JSON.stringify(payload));
        assert.equal(res.json().error, 'invalid_request');
      }
    });

    it('is in the OpenAPI document with one response shape per kind of answer', async () => {
      const doc = (await t.app.inject({ url: '/docs/json' })).json();
      const operation = doc.paths['/oauth/introspect'].post;
      const shapes = operation.responses['200'].content['application/json'].schema.anyOf;
      assert.equal(shapes.length, 3);
      assert.ok(operation.responses['401']);
    });
  });
}
