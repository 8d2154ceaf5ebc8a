import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt, decodeProtectedHeader, importJWK, jwtVerify } from 'jose';
import { registerAndLogin, startTestApp, type TestApp, TestClock } from '../helpers/app.js';
import { testProviders } from '../helpers/databases.js';

const form = (fields: Record<string, string>) => ({
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  payload: new URLSearchParams(fields).toString(),
});

for (const provider of testProviders()) {
  describe(`POST /oauth/token (${provider})`, () => {
    const clock = new TestClock();
    let t: TestApp;
    before(async () => {
      t = await startTestApp(provider, { now: clock.now, env: { REFRESH_REUSE_GRACE: '10' } });
      await t.app.inject({
        method: 'POST',
        url: '/v1/users',
        payload: { username: 'dana', password: 'dana password 1' },
      });
    });
    after(() => t.close());

    const token = (fields: Record<string, string>) =>
      t.app.inject({ method: 'POST', url: '/oauth/token', ...form(fields) });

    it('password grant (form-encoded) returns an RS256 at+jwt access token and an opaque refresh token, no-store', async () => {
      const res = await token({ grant_type: 'password', username: 'dana', password: 'dana password 1' });
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['cache-control'], 'no-store');
      const body = res.json();
      assert.deepEqual(Object.keys(body).sort(), ['access_token', 'expires_in', 'refresh_token', 'token_type']);
      assert.equal(body.token_type, 'Bearer');
      assert.equal(body.expires_in, 900);
      assert.match(body.refresh_token, /^[A-Za-z0-9_-]{43,}$/);
      // At least 256 bits of secret: the token carries a 32-byte MAC.
      assert.ok(Buffer.from(body.refresh_token, 'base64url').length >= 32);

      const header = decodeProtectedHeader(body.access_token);
      assert.equal(header.alg, 'RS256');
      assert.equal(header.typ, 'at+jwt');
      const jwks = (await t.app.inject({ url: '/.well-known/jwks.json' })).json();
      assert.ok(jwks.keys.some((key: { kid: string }) => key.kid === header.kid));

      const jwk = jwks.keys.find((key: { kid: string }) => key.kid === header.kid);
      const { payload } = await jwtVerify(body.access_token, await importJWK(jwk, 'RS256'), {
        issuer: 'http://tessera.test',
        audience: 'https://api.example.test',
        typ: 'at+jwt',
        currentDate: new Date(clock.ms),
      });
      for (const claim of ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id', 'sid', 'username', 'roles']) {
        assert.ok(claim in payload, `claim ${claim}`);
      }
      assert.equal(payload.exp! - payload.iat!, 900);
      assert.equal(payload.username, 'dana');
      assert.deepEqual(payload.roles, []);
      assert.equal(payload.client_id, 'tessera');
    });

    it('password grant accepts application/json too', async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'password', username: 'DANA', password: 'dana password 1' },
      });
      assert.equal(res.statusCode, 200);
    });

    it('answers invalid_grant identically for a wrong password and an unknown user', async () => {
      const wrong = await token({ grant_type: 'password', username: 'dana', password: 'not the password' });
      const unknown = await token({ grant_type: 'password', username: 'nobody-here', password: 'not the password' });
      assert.equal(wrong.statusCode, 400);
      assert.equal(unknown.statusCode, 400);
      assert.deepEqual(wrong.json(), unknown.json());
      assert.equal(wrong.json().error, 'invalid_grant');
      assert.equal(wrong.headers['cache-control'], 'no-store');
    });

    it('answers invalid_request and unsupported_grant_type in RFC 6749 §5.2 shape', async () => {
      const missing = await token({ grant_type: 'password', username: 'dana' });
      assert.equal(missing.statusCode, 400);
      assert.equal(missing.json().error, 'invalid_request');
      assert.equal(typeof missing.json().error_description, 'string');

      const noGrant = await token({ username: 'dana' });
      assert.equal(noGrant.statusCode, 400);
      assert.equal(noGrant.json().error, 'invalid_request');

      const unsupported = await token({ grant_type: 'client_credentials' });
      assert.equal(unsupported.statusCode, 400);
      assert.equal(unsupported.json().error, 'unsupported_grant_type');

      const repeated = await t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: 'grant_type=password&grant_type=refresh_token',
      });
      assert.equal(repeated.statusCode, 400);
      assert.equal(repeated.json().error, 'invalid_request');

      const wrongClient = await token({
        grant_type: 'password',
        username: 'dana',
        password: 'dana password 1',
        client_id: 'other',
      });
      assert.equal(wrongClient.statusCode, 401);
      assert.equal(wrongClient.json().error, 'invalid_client');
    });

    it('refresh grant rotates: a new refresh token each time, the old one gives the same successor within the grace window', async () => {
      const login = (await token({ grant_type: 'password', username: 'dana', password: 'dana password 1' })).json();
      const first = await token({ grant_type: 'refresh_token', refresh_token: login.refresh_token });
      assert.equal(first.statusCode, 200);
      const successor = first.json().refresh_token;
      assert.notEqual(successor, login.refresh_token);
      assert.equal(decodeJwt(first.json().access_token).sid, decodeJwt(login.access_token).sid);

      clock.advance(5);
      const again = await token({ grant_type: 'refresh_token', refresh_token: login.refresh_token });
      assert.equal(again.statusCode, 200);
      assert.equal(again.json().refresh_token, successor, 'same successor within the grace window');

      const next = await token({ grant_type: 'refresh_token', refresh_token: successor });
      assert.equal(next.statusCode, 200);
      assert.notEqual(next.json().refresh_token, successor);
    });

    it('reuse after the grace window revokes the whole session', async () => {
      const login = (await token({ grant_type: 'password', username: 'dana', password: 'dana password 1' })).json();
      const rotated = (await token({ grant_type: 'refresh_token', refresh_token: login.refresh_token })).json();
      clock.advance(11);
      const replay = await token({ grant_type: 'refresh_token', refresh_token: login.refresh_token });
      assert.equal(replay.statusCode, 400);
      assert.equal(replay.json().error, 'invalid_grant');
      assert.match(replay.json().error_description, /already used/);
      // The legitimate successor is dead too, and so is the access token's session.
      const successor = await token({ grant_type: 'refresh_token', refresh_token: rotated.refresh_token });
      assert.equal(successor.statusCode, 400);
      assert.equal(successor.json().error, 'invalid_grant');
      const me = await t.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${rotated.access_token}` } });
      assert.equal(me.statusCode, 401);
    });

    it('refresh tokens expire after REFRESH_TOKEN_TTL idle and after SESSION_MAX_AGE in all', async () => {
      const idle = (await token({ grant_type: 'password', username: 'dana', password: 'dana password 1' })).json();
      clock.advance(14 * 24 * 3600 + 1);
      const expired = await token({ grant_type: 'refresh_token', refresh_token: idle.refresh_token });
      assert.equal(expired.statusCode, 400);
      assert.match(expired.json().error_description, /expired/);

      let current = (await token({ grant_type: 'password', username: 'dana', password: 'dana password 1' })).json()
        .refresh_token;
      // Keep the session busy: it still ends at SESSION_MAX_AGE (30 days).
      for (let day = 0; day < 29; day++) {
        clock.advance(24 * 3600);
        const res = await token({ grant_type: 'refresh_token', refresh_token: current });
        assert.equal(res.statusCode, 200, `day ${day}`);
        current = res.json().refresh_token;
      }
      clock.advance(24 * 3600);
      const ended = await token({ grant_type: 'refresh_token', refresh_token: current });
      assert.equal(ended.statusCode, 400);
      assert.match(ended.json().error_description, /expired/);
    });

    it('issues no access token that outlives its session', async () => {
      const login = (await token({ grant_type: 'password', username: 'dana', password: 'dana password 1' })).json();
      let current = login.refresh_token;
      // Refresh daily up to 100 s before SESSION_MAX_AGE (30 days) ends the session.
      for (let day = 0; day < 29; day++) {
        clock.advance(24 * 3600);
        current = (await token({ grant_type: 'refresh_token', refresh_token: current })).json().refresh_token;
      }
      clock.advance(24 * 3600 - 100);
      const last = await token({ grant_type: 'refresh_token', refresh_token: current });
      assert.equal(last.statusCode, 200);
      // ACCESS_TOKEN_TTL is 900 s, but the session has 100 s left: so has the token.
      assert.equal(last.json().expires_in, 100);
      const claims = JSON.parse(Buffer.from(last.json().access_token.split('.')[1], 'base64url').toString());
      assert.equal(claims.exp - claims.iat, 100);
      assert.equal(claims.exp, Math.floor(clock.now() / 1000) + 100);
      // A fresh session's tokens get the full lifetime.
      const fresh = (await token({ grant_type: 'password', username: 'dana', password: 'dana password 1' })).json();
      assert.equal(fresh.expires_in, 900);
    });

    it('rejects garbage, truncated, padded and tampered refresh tokens with invalid_grant', async () => {
      const login = (await token({ grant_type: 'password', username: 'dana', password: 'dana password 1' })).json();
      const good: string = login.refresh_token;
      const flipped = Buffer.from(good, 'base64url');
      flipped[flipped.length - 1]! ^= 1;
      for (const bad of [
        'x',
        'not a token',
        good.slice(0, -2),
        `${good}==`,
        `${good}A`,
        flipped.toString('base64url'),
        'ä'.repeat(70),
      ]) {
        const res = await token({ grant_type: 'refresh_token', refresh_token: bad });
        assert.equal(res.statusCode, 400, bad);
        assert.equal(res.json().error, 'invalid_grant', bad);
      }
      // None of that harmed the real session.
      assert.equal((await token({ grant_type: 'refresh_token', refresh_token: good })).statusCode, 200);
    });

    it('refuses a refresh once the session secret stored in the database was altered, even right after it worked', async () => {
      const login = (await token({ grant_type: 'password', username: 'dana', password: 'dana password 1' })).json();
      const first = await token({ grant_type: 'refresh_token', refresh_token: login.refresh_token });
      assert.equal(first.statusCode, 200);
      const sessionId = decodeJwt(first.json().access_token).sid as string;
      const stored = await t.app.db.prisma.session.findUniqueOrThrow({ where: { id: sessionId } });
      // One character of the AES-GCM ciphertext changed: the sealed value no longer opens.
      const last = stored.secret.at(-1) === 'A' ? 'B' : 'A';
      await t.app.db.prisma.session.update({
        where: { id: sessionId },
        data: { secret: `${stored.secret.slice(0, -1)}${last}` },
      });
      const res = await token({ grant_type: 'refresh_token', refresh_token: first.json().refresh_token });
      assert.equal(res.statusCode, 400);
      assert.equal(res.json().error, 'invalid_grant');
      await t.app.db.prisma.session.update({ where: { id: sessionId }, data: { secret: stored.secret } });
      assert.equal(
        (await token({ grant_type: 'refresh_token', refresh_token: first.json().refresh_token })).statusCode,
        200,
      );
    });

    it('a disabled user can neither log in nor refresh', async () => {
      const user = await registerAndLogin(t.app, 'erin');
      assert.ok(await t.app.services.users.disable('erin'));
      const login = await token({ grant_type: 'password', username: 'erin', password: user.password });
      assert.equal(login.json().error, 'invalid_grant');
      const refresh = await token({ grant_type: 'refresh_token', refresh_token: user.refresh_token });
      assert.equal(refresh.json().error, 'invalid_grant');
    });
  });

  describe(`POST /oauth/revoke (${provider})`, () => {
    let t: TestApp;
    before(async () => {
      t = await startTestApp(provider);
    });
    after(() => t.close());

    it('ends the session of a refresh token and answers 200, also for unknown tokens', async () => {
      const user = await registerAndLogin(t.app);
      const res = await t.app.inject({ method: 'POST', url: '/oauth/revoke', ...form({ token: user.refresh_token }) });
      assert.equal(res.statusCode, 200);
      const refresh = await t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        ...form({ grant_type: 'refresh_token', refresh_token: user.refresh_token }),
      });
      assert.equal(refresh.json().error, 'invalid_grant');
      const me = await t.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${user.access_token}` } });
      assert.equal(me.statusCode, 401);

      const unknown = await t.app.inject({ method: 'POST', url: '/oauth/revoke', ...form({ token: 'garbage' }) });
      assert.equal(unknown.statusCode, 200);
      const again = await t.app.inject({
        method: 'POST',
        url: '/oauth/revoke',
        ...form({ token: user.refresh_token }),
      });
      assert.equal(again.statusCode, 200);
    });

    it('ends the session of an access token too (RFC 7009 §2), and ignores one that does not verify', async () => {
      const user = await registerAndLogin(t.app);
      const other = await registerAndLogin(t.app);
      // Not a token of ours: a tampered signature, then a token that is not even JSON.
      const [header, payload, signature] = user.access_token.split('.');
      const tampered = `${header}.${payload}.${signature!.slice(0, -4)}AAAA`;
      for (const token of [tampered, 'a.b.c']) {
        const res = await t.app.inject({ method: 'POST', url: '/oauth/revoke', ...form({ token }) });
        assert.equal(res.statusCode, 200);
      }
      const stillIn = await t.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${user.access_token}` } });
      assert.equal(stillIn.statusCode, 200);

      const res = await t.app.inject({
        method: 'POST',
        url: '/oauth/revoke',
        ...form({ token: user.access_token, token_type_hint: 'access_token' }),
      });
      assert.equal(res.statusCode, 200);
      const me = await t.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${user.access_token}` } });
      assert.equal(me.statusCode, 401);
      const refresh = await t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        ...form({ grant_type: 'refresh_token', refresh_token: user.refresh_token }),
      });
      assert.equal(refresh.json().error, 'invalid_grant');
      // Another user's session is untouched.
      const theirs = await t.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${other.access_token}` } });
      assert.equal(theirs.statusCode, 200);
    });

    it('answers invalid_request without a token', async () => {
      const res = await t.app.inject({ method: 'POST', url: '/oauth/revoke', ...form({}) });
      assert.equal(res.statusCode, 400);
      assert.equal(res.json().error, 'invalid_request');
    });
  });
}
