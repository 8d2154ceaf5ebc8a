import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { testProviders } from '../helpers/databases.js';

for (const provider of testProviders()) {
  describe(`POST /v1/users (${provider})`, () => {
    let t: TestApp;
    before(async () => {
      t = await startTestApp(provider);
    });
    after(() => t.close());

    it('creates a user and returns only id, username and createdAt', async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/users',
        payload: { username: 'alice', password: 'a long enough password' },
      });
      assert.equal(res.statusCode, 201);
      const body = res.json();
      assert.deepEqual(Object.keys(body).sort(), ['createdAt', 'id', 'username']);
      assert.equal(body.username, 'alice');
      assert.match(body.id, /^[0-9a-f-]{36}$/);
      assert.ok(!Number.isNaN(Date.parse(body.createdAt)));
      assert.ok(!res.body.includes('a long enough password'));
    });

    it('answers 409 for a username taken case-insensitively after Unicode normalization', async () => {
      await t.app.inject({ method: 'POST', url: '/v1/users', payload: { username: 'Bob', password: 'password-one' } });
      for (const username of ['bob', 'BOB', 'Ｂｏｂ']) {
        const res = await t.app.inject({
          method: 'POST',
          url: '/v1/users',
          payload: { username, password: 'password-two' },
        });
        assert.equal(res.statusCode, 409, username);
        assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
        assert.equal(res.json().code, 'username_taken');
        assert.equal(res.json().status, 409);
      }
    });

    it('accepts non-Latin usernames and keeps them as typed', async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/users',
        payload: { username: 'Ζωή', password: 'κωδικός πρόσβασης' },
      });
      assert.equal(res.statusCode, 201);
      assert.equal(res.json().username, 'Ζωή');
    });

    it('rejects invalid usernames and passwords with 400 problem details naming the field', async () => {
      const cases: Array<[unknown, string]> = [
        [{ username: '', password: 'long enough pw' }, 'username'],
        [{ username: 'x'.repeat(65), password: 'long enough pw' }, 'username'],
        [{ username: 'has space', password: 'long enough pw' }, 'username'],
        [{ username: 'ctrl\u0007char', password: 'long enough pw' }, 'username'],
        [{ username: 'shortpw', password: '1234567' }, 'password'],
        [{ username: 'longpw', password: 'x'.repeat(1025) }, 'password'],
        [{ username: 'nopw' }, 'password'],
        [{ password: 'long enough pw' }, 'username'],
        [{ username: 42, password: 'long enough pw' }, 'username'],
        [{ username: 'typed', password: 12345678 }, 'password'],
        // A field the schema does not list is refused, not silently dropped.
        [{ username: 'extra', password: 'long enough pw', admin: true }, 'admin'],
      ];
      for (const [payload, field] of cases) {
        const res = await t.app.inject({ method: 'POST', url: '/v1/users', payload: payload as object });
        assert.equal(res.statusCode, 400, JSON.stringify(payload));
        const body = res.json();
        assert.equal(body.code, 'validation_failed');
        assert.match(body.detail, new RegExp(field), JSON.stringify(body));
        assert.equal(typeof body.requestId, 'string');
      }
    });

    it('allows passwords of exactly 8 and 1024 characters, counting code points', async () => {
      const ok8 = await t.app.inject({
        method: 'POST',
        url: '/v1/users',
        payload: { username: 'eight', password: '🔑🔑🔑🔑🔑🔑🔑🔑' },
      });
      assert.equal(ok8.statusCode, 201);
      const ok1024 = await t.app.inject({
        method: 'POST',
        url: '/v1/users',
        payload: { username: 'kilo', password: 'p'.repeat(1024) },
      });
      assert.equal(ok1024.statusCode, 201);
    });
  });

  describe(`POST /v1/users with ALLOW_REGISTRATION=false (${provider})`, () => {
    let t: TestApp;
    before(async () => {
      t = await startTestApp(provider, { env: { ALLOW_REGISTRATION: 'false' } });
    });
    after(() => t.close());

    it('answers 403 registration_disabled', async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/users',
        payload: { username: 'carol', password: 'long enough pw' },
      });
      assert.equal(res.statusCode, 403);
      assert.equal(res.json().code, 'registration_disabled');
    });
  });
}
