import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { startTestApp, type TestApp, TestClock } from '../helpers/app.js';
import { testProviders } from '../helpers/databases.js';

for (const provider of testProviders()) {
  describe(`audit trail (${provider})`, () => {
    const clock = new TestClock();
    const lines: string[] = [];
    let t: TestApp;
    before(async () => {
      const logStream = new Writable({
        write(chunk, _encoding, done) {
          lines.push(...String(chunk).split('\n').filter(Boolean));
          done();
        },
      });
      t = await startTestApp(provider, { now: clock.now, logStream, env: { LOG_LEVEL: 'info' } });
    });
    after(() => t.close());

    it('records logins, reuse, password changes and revocations, queryable by the user, without secrets', async () => {
      const password = 'an audited passphrase';
      const newPassword = 'another audited passphrase';
      const ua = { 'user-agent': 'audit-test/1.0' };
      assert.equal(
        (await t.app.inject({ method: 'POST', url: '/v1/users', payload: { username: 'audrey', password } }))
          .statusCode,
        201,
      );
      const token = (body: Record<string, string>) =>
        t.app.inject({ method: 'POST', url: '/oauth/token', headers: ua, payload: body });
      await token({ grant_type: 'password', username: 'audrey', password: 'not her password' });
      const first = (await token({ grant_type: 'password', username: 'audrey', password })).json();
      // A refresh token replayed after the grace window: the session is revoked.
      await token({ grant_type: 'refresh_token', refresh_token: first.refresh_token });
      clock.advance(60);
      await token({ grant_type: 'refresh_token', refresh_token: first.refresh_token });

      const second = (await token({ grant_type: 'password', username: 'audrey', password })).json();
      const auth = { authorization: `Bearer ${second.access_token}` };
      const change = await t.app.inject({
        method: 'POST',
        url: '/v1/me/password',
        headers: auth,
        payload: { currentPassword: password, newPassword },
      });
      assert.equal(change.statusCode, 204);
      assert.equal((await t.app.inject({ method: 'DELETE', url: '/v1/sessions', headers: auth })).statusCode, 204);

      const third = (await token({ grant_type: 'password', username: 'audrey', password: newPassword })).json();
      const res = await t.app.inject({
        url: '/v1/me/audit',
        headers: { authorization: `Bearer ${third.access_token}` },
      });
      assert.equal(res.statusCode, 200);
      const events = res.json().events as Array<{
        type: string;
        sessionId: string | null;
        userAgent: string | null;
        createdAt: string;
      }>;
      // Newest first. The failed login names no user (no username is stored), so it is not in her history.
      assert.deepEqual(
        events.map((event) => event.type),
        [
          'login_succeeded',
          'sessions_revoked',
          'password_changed',
          'login_succeeded',
          'refresh_token_reuse',
          'login_succeeded',
          'user_registered',
        ],
      );
      assert.equal(
        events[4]!.sessionId,
        first.access_token
          ? JSON.parse(Buffer.from(first.access_token.split('.')[1], 'base64url').toString()).sid
          : null,
      );
      assert.equal(events[0]!.userAgent, 'audit-test/1.0');

      const limited = await t.app.inject({
        // A cache-buster is ignored, not refused.
        url: '/v1/me/audit?limit=2&_=1700000000000',
        headers: { authorization: `Bearer ${third.access_token}` },
      });
      assert.equal(limited.json().events.length, 2);
      assert.equal(
        (
          await t.app.inject({
            url: '/v1/me/audit?limit=1000',
            headers: { authorization: `Bearer ${third.access_token}` },
          })
        ).statusCode,
        400,
      );

      // A `before` the date-time format admits but no Date can hold is a 400 naming it, not a 500.
      for (const before of ['2016-12-31T23:59:60Z', '2016-12-31T23:59:60.5Z', 'yesterday']) {
        const bad = await t.app.inject({
          url: `/v1/me/audit?before=${encodeURIComponent(before)}`,
          headers: { authorization: `Bearer ${third.access_token}` },
        });
        assert.equal(bad.statusCode, 400, `${before}: ${bad.body}`);
        assert.equal(bad.json().code, 'validation_failed');
      }
      const page = await t.app.inject({
        url: `/v1/me/audit?before=${encodeURIComponent(events[1]!.createdAt)}`,
        headers: { authorization: `Bearer ${third.access_token}` },
      });
      assert.equal(page.statusCode, 200);
      assert.ok(page.json().events.every((event: { createdAt: string }) => event.createdAt < events[1]!.createdAt));

      // Operators see every event, the failed login too, in the log.
      const audit = lines.map((line) => JSON.parse(line)).filter((entry) => entry.audit === true);
      assert.ok(audit.some((entry) => entry.event === 'login_failed'));
      assert.ok(audit.some((entry) => entry.event === 'refresh_token_reuse'));
      const stored = await t.app.db.prisma.auditEvent.findMany();
      const everything = JSON.stringify(stored) + lines.join('\n') + res.body;
      for (const secret of [password, newPassword, 'not her password', first.refresh_token, second.refresh_token]) {
        assert.ok(!everything.includes(secret), 'a secret reached the audit trail');
      }
    });
  });
}
