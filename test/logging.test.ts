import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { startTestApp } from './helpers/app.js';

describe('logs', () => {
  it('are JSON with request ids and never contain passwords, tokens or key material', async () => {
    const lines: string[] = [];
    const logStream = new Writable({
      write(chunk, _encoding, done) {
        lines.push(...String(chunk).split('\n').filter(Boolean));
        done();
      },
    });
    const t = await startTestApp('sqlite', { logStream, env: { LOG_LEVEL: 'trace' } });
    try {
      const password = 'very-secret-password-123';
      await t.app.inject({ method: 'POST', url: '/v1/users', payload: { username: 'logan', password } });
      const login = (
        await t.app.inject({
          method: 'POST',
          url: '/oauth/token',
          payload: { grant_type: 'password', username: 'logan', password },
        })
      ).json();
      await t.app.inject({
        url: '/v1/me',
        headers: { authorization: `Bearer ${login.access_token}`, 'x-request-id': 'trace-me-42' },
      });
      await t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'refresh_token', refresh_token: login.refresh_token },
      });
      await t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'password', username: 'logan', password: 'wrong-secret-guess-987' },
      });
      // Tokens a client put in the query string (RFC 6750 §2.3 and 6749 §3.2 forbid it; it happens).
      await t.app.inject({ url: `/v1/me?access_token=${encodeURIComponent(login.access_token)}&limit=5` });
      await t.app.inject({
        method: 'POST',
        url: `/oauth/token?refresh_token=${encodeURIComponent(login.refresh_token)}&password=${password}`,
        payload: { grant_type: 'refresh_token' },
      });
      // Under names that say nothing, or as an Authorization value: redacted by their shape.
      await t.app.inject({
        url: `/v1/me?t=${login.access_token}&x=${login.refresh_token}&authorization=${encodeURIComponent(`Bearer ${login.access_token}`)}`,
      });
      // A request that fails validation, whose body would be tempting to log.
      await t.app.inject({ method: 'POST', url: '/v1/users', payload: { username: 'x y', password } });

      assert.ok(lines.length > 5);
      const records = lines.map((line) => JSON.parse(line));
      assert.ok(
        records.some((record) => record.requestId === 'trace-me-42'),
        'a caller’s x-request-id is used',
      );
      const all = lines.join('\n');
      for (const secret of [
        password,
        'wrong-secret-guess-987',
        login.access_token,
        login.refresh_token,
        t.config.keyEncryptionSecret,
      ]) {
        assert.ok(!all.includes(secret), `log contains a secret: ${secret.slice(0, 12)}…`);
      }
      assert.ok(!all.includes('PRIVATE KEY'));
      // The rest of such a URL is still logged, for the operator.
      const urls = records.map((record) => record.req?.url).filter(Boolean);
      assert.ok(urls.includes('/v1/me?access_token=[redacted]&limit=5'), urls.join(' '));
    } finally {
      await t.close();
    }
  });
});
