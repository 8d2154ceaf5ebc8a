import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { registerAndLogin, startTestApp, type TestApp } from '../helpers/app.js';
import { testProviders } from '../helpers/databases.js';

for (const provider of testProviders()) {
  describe(`/v1/sessions (${provider})`, () => {
    let t: TestApp;
    before(async () => {
      t = await startTestApp(provider);
    });
    after(() => t.close());

    const login = async (username: string, password: string, userAgent: string) =>
      (
        await t.app.inject({
          method: 'POST',
          url: '/oauth/token',
          headers: { 'user-agent': userAgent },
          payload: { grant_type: 'password', username, password },
        })
      ).json();

    it('lists the caller’s active sessions only, marking the current one', async () => {
      const user = await registerAndLogin(t.app, 'jack');
      const phone = await login('jack', user.password, 'PhoneApp/1.0');
      await registerAndLogin(t.app, 'someone-else');
      const res = await t.app.inject({
        url: '/v1/sessions',
        headers: { authorization: `Bearer ${phone.access_token}` },
      });
      assert.equal(res.statusCode, 200);
      const { sessions } = res.json();
      assert.equal(sessions.length, 2);
      const current = sessions.filter((s: { current: boolean }) => s.current);
      assert.equal(current.length, 1);
      assert.equal(current[0].id, decodeJwt(phone.access_token).sid);
      assert.equal(current[0].userAgent, 'PhoneApp/1.0');
      for (const session of sessions) {
        assert.deepEqual(Object.keys(session).sort(), [
          'createdAt',
          'current',
          'expiresAt',
          'id',
          'ipAddress',
          'lastUsedAt',
          'userAgent',
        ]);
      }
    });

    it('DELETE /v1/sessions/:id ends one session; another user’s session id is 404', async () => {
      const user = await registerAndLogin(t.app, 'kate');
      const laptop = await login('kate', user.password, 'Laptop');
      const auth = { authorization: `Bearer ${user.access_token}` };
      const laptopSid = String(decodeJwt(laptop.access_token).sid);
      const res = await t.app.inject({ method: 'DELETE', url: `/v1/sessions/${laptopSid}`, headers: auth });
      assert.equal(res.statusCode, 204);
      const refresh = await t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'refresh_token', refresh_token: laptop.refresh_token },
      });
      assert.equal(refresh.json().error, 'invalid_grant');
      const again = await t.app.inject({ method: 'DELETE', url: `/v1/sessions/${laptopSid}`, headers: auth });
      assert.equal(again.statusCode, 404);

      const stranger = await registerAndLogin(t.app, 'leo');
      const foreign = await t.app.inject({
        method: 'DELETE',
        url: `/v1/sessions/${decodeJwt(stranger.access_token).sid}`,
        headers: auth,
      });
      assert.equal(foreign.statusCode, 404);
      const strangerMe = await t.app.inject({
        url: '/v1/me',
        headers: { authorization: `Bearer ${stranger.access_token}` },
      });
      assert.equal(strangerMe.statusCode, 200, 'another user’s session is untouched');

      const badId = await t.app.inject({ method: 'DELETE', url: '/v1/sessions/not-a-uuid', headers: auth });
      assert.equal(badId.statusCode, 400);
      assert.equal(badId.json().code, 'validation_failed');
    });

    it('DELETE /v1/sessions logs out everywhere', async () => {
      const user = await registerAndLogin(t.app, 'mia');
      const tablet = await login('mia', user.password, 'Tablet');
      const res = await t.app.inject({
        method: 'DELETE',
        url: '/v1/sessions',
        headers: { authorization: `Bearer ${user.access_token}` },
      });
      assert.equal(res.statusCode, 204);
      for (const session of [user, tablet]) {
        const refresh = await t.app.inject({
          method: 'POST',
          url: '/oauth/token',
          payload: { grant_type: 'refresh_token', refresh_token: session.refresh_token },
        });
        assert.equal(refresh.json().error, 'invalid_grant');
        const me = await t.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${session.access_token}` } });
        assert.equal(me.statusCode, 401);
      }
    });
  });
}
