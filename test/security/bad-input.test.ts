import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { registerAndLogin, startTestApp, type TestApp } from '../helpers/app.js';
import { testProviders } from '../helpers/databases.js';

for (const provider of testProviders()) {
  describe(`bad input gets a documented 4xx, never a 500 (${provider})`, () => {
    let t: TestApp;
    before(async () => {
      t = await startTestApp(provider);
    });
    after(() => t.close());

    const problemRoutes = [
      { method: 'POST' as const, url: '/v1/users' },
      { method: 'POST' as const, url: '/v1/me/password' },
    ];
    const oauthRoutes = [
      { method: 'POST' as const, url: '/oauth/token' },
      { method: 'POST' as const, url: '/oauth/revoke' },
    ];

    const bodies: Array<[string, string, string]> = [
      ['malformed JSON', 'application/json', '{"username": "a", '],
      ['JSON null', 'application/json', 'null'],
      ['JSON array', 'application/json', '[1,2,3]'],
      ['JSON string', 'application/json', '"hello"'],
      ['empty JSON body', 'application/json', ''],
      ['deeply nested', 'application/json', `${'['.repeat(5000)}${']'.repeat(5000)}`],
      ['prototype pollution', 'application/json', '{"__proto__": {"admin": true}, "username": "x"}'],
      ['text/plain', 'text/plain', 'username=a&password=b'],
      ['huge body', 'application/json', JSON.stringify({ username: 'a', password: 'x'.repeat(200_000) })],
      ['invalid UTF-8', 'application/json', '{"username": "\udc00"}'],
    ];

    it('answers problem details on the /v1 routes', async () => {
      const user = await registerAndLogin(t.app);
      for (const route of problemRoutes) {
        for (const [name, contentType, payload] of bodies) {
          const res = await t.app.inject({
            ...route,
            headers: { 'content-type': contentType, authorization: `Bearer ${user.access_token}` },
            payload,
          });
          assert.ok(
            res.statusCode >= 400 && res.statusCode < 500,
            `${route.url} ${name}: ${res.statusCode} ${res.body.slice(0, 200)}`,
          );
          assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8', `${route.url} ${name}`);
          const body = res.json();
          assert.equal(body.status, res.statusCode);
          assert.equal(typeof body.code, 'string');
        }
      }
    });

    it('answers {error, error_description} on the OAuth routes', async () => {
      for (const route of oauthRoutes) {
        for (const [name, contentType, payload] of bodies) {
          const res = await t.app.inject({ ...route, headers: { 'content-type': contentType }, payload });
          assert.ok(
            res.statusCode >= 400 && res.statusCode < 500,
            `${route.url} ${name}: ${res.statusCode} ${res.body.slice(0, 200)}`,
          );
          const body = res.json();
          assert.equal(typeof body.error, 'string', `${route.url} ${name}`);
          assert.equal(typeof body.error_description, 'string', `${route.url} ${name}`);
        }
      }
    });

    it('says 413 for oversized bodies and 415 for unsupported content types', async () => {
      const big = await t.app.inject({
        method: 'POST',
        url: '/v1/users',
        payload: { username: 'a', password: 'x'.repeat(100_000) },
      });
      assert.equal(big.statusCode, 413);
      assert.equal(big.json().code, 'body_too_large');
      const xml = await t.app.inject({
        method: 'POST',
        url: '/v1/users',
        headers: { 'content-type': 'application/xml' },
        payload: '<a/>',
      });
      assert.equal(xml.statusCode, 415);
      assert.equal(xml.json().code, 'unsupported_media_type');
    });

    it('treats odd but valid Unicode as data, not as an error', async () => {
      for (const username of ['😀', 'ñandú', '名前', 'a\u0301', 'ǅ']) {
        const res = await t.app.inject({
          method: 'POST',
          url: '/v1/users',
          payload: { username, password: '𝔭𝔞𝔰𝔰𝔴𝔬𝔯𝔡 long' },
        });
        assert.equal(res.statusCode, 201, username);
        const login = await t.app.inject({
          method: 'POST',
          url: '/oauth/token',
          payload: { grant_type: 'password', username, password: '𝔭𝔞𝔰𝔰𝔴𝔬𝔯𝔡 long' },
        });
        assert.equal(login.statusCode, 200, username);
      }
    });

    it('never answers 500 to garbage tokens in the Authorization header', async () => {
      // A well-formed bearer token that is no good: 401; a malformed Bearer header: 400 (RFC 6750 §3.1).
      const noise: [string, number][] = [
        ['Bearer ....', 401],
        ['Bearer eyJhbGciOiJub25lIn0.e30.', 401],
        ['Bearer eyJ%%%.x.y', 400],
        ['Bearer \u00ff\u00fe', 400],
        ['bearer', 400],
        ['Bearer a b c', 400],
      ];
      for (const [authorization, status] of noise) {
        for (const url of ['/v1/me', '/v1/sessions']) {
          const res = await t.app.inject({ url, headers: { authorization } });
          assert.equal(res.statusCode, status, `${url} ${authorization}`);
          assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
        }
      }
    });

    it('still serves normally afterwards', async () => {
      const ready = await t.app.inject({ url: '/readyz' });
      assert.equal(ready.statusCode, 200);
    });
  });
}
