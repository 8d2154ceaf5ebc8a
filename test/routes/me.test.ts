import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { registerAndLogin, startTestApp, type TestApp, TestClock } from '../helpers/app.js';
import { testProviders } from '../helpers/databases.js';

for (const provider of testProviders()) {
  describe(`GET /v1/me and POST /v1/me/password (${provider})`, () => {
    const clock = new TestClock();
    let t: TestApp;
    before(async () => {
      t = await startTestApp(provider, { now: clock.now });
    });
    after(() => t.close());

    it('returns the user of a valid access token with exactly id, username, roles, createdAt', async () => {
      const user = await registerAndLogin(t.app, 'frank');
      const res = await t.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${user.access_token}` } });
      assert.equal(res.statusCode, 200);
      const body = res.json();
      assert.deepEqual(Object.keys(body).sort(), ['createdAt', 'id', 'roles', 'username']);
      assert.equal(body.id, user.userId);
      assert.equal(body.username, 'frank');
      assert.deepEqual(body.roles, []);
    });

    it('answers 401 with a Bearer challenge without a token, and invalid_token for a bad one', async () => {
      const none = await t.app.inject({ url: '/v1/me' });
      assert.equal(none.statusCode, 401);
      assert.equal(none.headers['www-authenticate'], 'Bearer realm="tessera"');
      assert.equal(none.json().code, 'unauthorized');

      for (const authorization of ['Bearer garbage', 'Bearer a.b.c', `Bearer ${'x'.repeat(5000)}`]) {
        const res = await t.app.inject({ url: '/v1/me', headers: { authorization } });
        assert.equal(res.statusCode, 401, authorization.slice(0, 20));
        assert.match(String(res.headers['www-authenticate']), /^Bearer realm="tessera", error="invalid_token"/);
        assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
        assert.equal(res.json().code, 'unauthorized');
      }
    });

    it('answers another scheme like no token at all: 401 with the bare Bearer challenge (RFC 6750 §3.1)', async () => {
      for (const authorization of [
        'Basic dXNlcjpwYXNz',
        'basic Zm9vOmJhcg==',
        'Digest username="u", realm="tessera"',
        'DPoP eyJhbGciOiJFUzI1NiJ9.e30.sig',
        'Token abc',
        'Negotiate',
        'Bearerx abc',
      ]) {
        for (const url of ['/v1/me', '/v1/sessions']) {
          const res = await t.app.inject({ url, headers: { authorization } });
          assert.equal(res.statusCode, 401, `${url} ${authorization}`);
          assert.equal(res.headers['www-authenticate'], 'Bearer realm="tessera"', `${url} ${authorization}`);
          assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
          const body = res.json();
          assert.equal(body.code, 'unauthorized');
          assert.equal(body.status, 401);
        }
      }
    });

    it('answers a malformed Bearer header 400 with error="invalid_request" (RFC 6750 §3.1)', async () => {
      for (const authorization of [
        'Bearer',
        'bearer',
        'Bearer ',
        'Bearer a b c',
        'Bearer eyJ%%%.x.y',
        'Bearer a=b',
        'Bearer =abc',
        'Bearer abc,def',
        'Bearer\tabc',
        'Bearer \u00ff\u00fe',
      ]) {
        for (const url of ['/v1/me', '/v1/sessions']) {
          const res = await t.app.inject({ url, headers: { authorization } });
          const label = `${url} ${JSON.stringify(authorization)}`;
          assert.equal(res.statusCode, 400, label);
          assert.equal(
            res.headers['www-authenticate'],
            'Bearer realm="tessera", error="invalid_request", error_description="the Authorization header must be \'Bearer <token>\'"',
            label,
          );
          assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8', label);
          const body = res.json();
          assert.equal(body.code, 'bad_request', label);
          assert.equal(body.status, 400, label);
          assert.equal(body.detail, 'the Authorization header must be "Bearer <token>"', label);
        }
      }
    });

    it('accepts the Bearer scheme in any case and with more than one space before the token (RFC 6750 §2.1)', async () => {
      const user = await registerAndLogin(t.app, 'bearer-grammar');
      for (const authorization of [
        `Bearer ${user.access_token}`,
        `bearer ${user.access_token}`,
        `BEARER ${user.access_token}`,
        `Bearer  ${user.access_token}`,
      ]) {
        const res = await t.app.inject({ url: '/v1/me', headers: { authorization } });
        assert.equal(res.statusCode, 200, authorization.slice(0, 10));
      }
    });

    it('rejects an expired access token', async () => {
      const user = await registerAndLogin(t.app, 'gina');
      // Our verifier uses the real clock; the token was issued by the test clock, now moved 16 minutes back.
      clock.advance(-16 * 60);
      const old = await t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'password', username: 'gina', password: user.password },
      });
      clock.advance(16 * 60);
      const res = await t.app.inject({
        url: '/v1/me',
        headers: { authorization: `Bearer ${old.json().access_token}` },
      });
      assert.equal(res.statusCode, 401);
      assert.match(String(res.headers['www-authenticate']), /expired/);
    });

    it('changes the password: 204, old password stops working, every other session ends, this one stays', async () => {
      const user = await registerAndLogin(t.app, 'hank');
      const other = (
        await t.app.inject({
          method: 'POST',
          url: '/oauth/token',
          payload: { grant_type: 'password', username: 'hank', password: user.password },
        })
      ).json();
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/me/password',
        headers: { authorization: `Bearer ${user.access_token}` },
        payload: { currentPassword: user.password, newPassword: 'a brand new password' },
      });
      assert.equal(res.statusCode, 204);
      const oldLogin = await t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'password', username: 'hank', password: user.password },
      });
      assert.equal(oldLogin.json().error, 'invalid_grant');
      const newLogin = await t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'password', username: 'hank', password: 'a brand new password' },
      });
      assert.equal(newLogin.statusCode, 200);
      const otherRefresh = await t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'refresh_token', refresh_token: other.refresh_token },
      });
      assert.equal(otherRefresh.json().error, 'invalid_grant');
      const otherMe = await t.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${other.access_token}` } });
      assert.equal(otherMe.statusCode, 401);
      const thisMe = await t.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${user.access_token}` } });
      assert.equal(thisMe.statusCode, 200);
    });

    it('refuses a password change with the wrong current password or a too-short new one', async () => {
      const user = await registerAndLogin(t.app, 'iris');
      const auth = { authorization: `Bearer ${user.access_token}` };
      const wrong = await t.app.inject({
        method: 'POST',
        url: '/v1/me/password',
        headers: auth,
        payload: { currentPassword: 'nope nope', newPassword: 'another password' },
      });
      assert.equal(wrong.statusCode, 400);
      assert.equal(wrong.json().code, 'invalid_current_password');
      const short = await t.app.inject({
        method: 'POST',
        url: '/v1/me/password',
        headers: auth,
        payload: { currentPassword: user.password, newPassword: 'short' },
      });
      assert.equal(short.statusCode, 400);
      assert.equal(short.json().code, 'validation_failed');
      const anonymous = await t.app.inject({
        method: 'POST',
        url: '/v1/me/password',
        payload: { currentPassword: user.password, newPassword: 'another password' },
      });
      assert.equal(anonymous.statusCode, 401);
    });
  });
}
