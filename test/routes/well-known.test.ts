import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import { registerAndLogin, startTestApp, type TestApp } from '../helpers/app.js';
import { testProviders } from '../helpers/databases.js';

for (const provider of testProviders()) {
  describe(`discovery, JWKS and health (${provider})`, () => {
    let t: TestApp;
    before(async () => {
      t = await startTestApp(provider);
    });
    after(() => t.close());

    it('publishes only public RSA members in the JWKS, cacheable, with an ETag', async () => {
      const res = await t.app.inject({ url: '/.well-known/jwks.json' });
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      assert.match(String(res.headers['cache-control']), /^public, max-age=\d+$/);
      const { keys } = res.json();
      assert.equal(keys.length, 1);
      for (const key of keys) {
        assert.deepEqual(Object.keys(key).sort(), ['alg', 'e', 'kid', 'kty', 'n', 'use']);
        assert.equal(key.kty, 'RSA');
        assert.equal(key.use, 'sig');
        assert.equal(key.alg, 'RS256');
        assert.equal(Buffer.from(key.n, 'base64url').length, 256, '2048-bit modulus');
      }
      for (const member of ['"d"', '"p"', '"q"', '"dp"', '"dq"', '"qi"']) assert.ok(!res.body.includes(member), member);

      const cached = await t.app.inject({
        url: '/.well-known/jwks.json',
        headers: { 'if-none-match': String(res.headers.etag) },
      });
      assert.equal(cached.statusCode, 304);
      assert.equal(cached.body, '');
    });

    it('answers If-None-Match with the weak comparison of RFC 9110 §13.1.2: W/, lists and *', async () => {
      const first = await t.app.inject({ url: '/.well-known/jwks.json' });
      const etag = String(first.headers.etag);
      assert.match(etag, /^"[^",]+"$/);
      const conditional = (ifNoneMatch: string) =>
        t.app.inject({ url: '/.well-known/jwks.json', headers: { 'if-none-match': ifNoneMatch } });

      for (const ifNoneMatch of [
        etag,
        `W/${etag}`,
        `"stale", ${etag}`,
        `"stale",W/${etag}`,
        `W/"stale" , W/${etag} , "older"`,
        `, ${etag},`,
        ` ${etag} `,
        '*',
      ]) {
        const res = await conditional(ifNoneMatch);
        assert.equal(res.statusCode, 304, ifNoneMatch);
        assert.equal(res.body, '', ifNoneMatch);
        assert.equal(res.headers.etag, etag, ifNoneMatch);
        assert.equal(res.headers['cache-control'], first.headers['cache-control'], ifNoneMatch);
      }

      for (const ifNoneMatch of [
        '"stale"',
        'W/"stale", "older"',
        etag.slice(1, -1),
        `"${etag}"`,
        `W/"x${etag.slice(1)}`,
        '',
        '**',
      ]) {
        const res = await conditional(ifNoneMatch);
        assert.equal(res.statusCode, 200, ifNoneMatch);
        assert.equal(res.headers.etag, etag, ifNoneMatch);
        assert.equal(res.body, first.body, ifNoneMatch);
      }
    });

    it('uses the RFC 7638 thumbprint as kid and signs tokens with it', async () => {
      const { calculateJwkThumbprint } = await import('jose');
      const [key] = (await t.app.inject({ url: '/.well-known/jwks.json' })).json().keys;
      assert.equal(key.kid, await calculateJwkThumbprint({ kty: key.kty, n: key.n, e: key.e }));
      const user = await registerAndLogin(t.app);
      assert.equal(decodeProtectedHeader(user.access_token).kid, key.kid);
    });

    it('serves discovery metadata whose issuer equals the tokens’ iss', async () => {
      for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
        const res = await t.app.inject({ url: path });
        assert.equal(res.statusCode, 200);
        const metadata = res.json();
        assert.equal(metadata.issuer, 'http://tessera.test');
        assert.equal(metadata.jwks_uri, 'http://tessera.test/.well-known/jwks.json');
        assert.equal(metadata.token_endpoint, 'http://tessera.test/oauth/token');
        assert.equal(metadata.revocation_endpoint, 'http://tessera.test/oauth/revoke');
        assert.deepEqual(metadata.grant_types_supported, ['password', 'refresh_token']);
        assert.deepEqual(metadata.access_token_signing_alg_values_supported, ['RS256']);
      }
      const user = await registerAndLogin(t.app);
      const payload = JSON.parse(Buffer.from(user.access_token.split('.')[1]!, 'base64url').toString());
      assert.equal(payload.iss, 'http://tessera.test');
    });

    it('reports liveness and readiness', async () => {
      const health = await t.app.inject({ url: '/healthz' });
      assert.equal(health.statusCode, 200);
      assert.deepEqual(health.json(), { status: 'ok' });
      const ready = await t.app.inject({ url: '/readyz' });
      assert.equal(ready.statusCode, 200);
      assert.deepEqual(ready.json(), { status: 'ok', checks: { database: 'ok', signingKey: 'ok' } });
    });

    it('serves the OpenAPI document built from the route schemas, and its UI', async () => {
      const doc = (await t.app.inject({ url: '/docs/json' })).json();
      assert.equal(doc.openapi, '3.1.0');
      for (const path of [
        '/v1/users',
        '/oauth/token',
        '/oauth/revoke',
        '/v1/me',
        '/v1/me/password',
        '/v1/sessions',
        '/v1/sessions/{id}',
        '/.well-known/jwks.json',
        '/healthz',
        '/readyz',
      ]) {
        assert.ok(doc.paths[path], path);
      }
      assert.ok(doc.paths['/oauth/token'].post.responses['200']);
      assert.ok(doc.paths['/v1/users'].post.responses['409']);
      // Error responses as they are sent: problem details as application/problem+json, 429 where
      // rate-limited, and a 500 on every operation in its routes' error shape.
      const conflict = doc.paths['/v1/users'].post.responses['409'].content;
      assert.deepEqual(Object.keys(conflict), ['application/problem+json']);
      assert.ok(doc.paths['/v1/users'].post.responses['429']);
      assert.ok(doc.paths['/v1/me/password'].post.responses['429']);
      assert.deepEqual(Object.keys(doc.paths['/v1/me'].get.responses['500'].content), ['application/problem+json']);
      assert.equal(
        doc.paths['/oauth/token'].post.responses['500'].content['application/json'].schema.$ref,
        '#/components/schemas/OAuthError',
      );
      for (const [path, operations] of Object.entries(
        doc.paths as Record<string, Record<string, { responses: object }>>,
      )) {
        for (const [method, operation] of Object.entries(operations)) {
          assert.ok('500' in operation.responses, `${method} ${path} documents no 500`);
        }
      }
      const sent = await t.app.inject({ method: 'POST', url: '/v1/users', payload: { username: 'a', password: 'b' } });
      assert.match(String(sent.headers['content-type']), /^application\/problem\+json/);
      const ui = await t.app.inject({ url: '/docs' });
      assert.ok([200, 302].includes(ui.statusCode));
    });

    it('answers unknown routes with a 404 problem', async () => {
      const res = await t.app.inject({ url: '/nope' });
      assert.equal(res.statusCode, 404);
      assert.equal(res.json().code, 'not_found');
    });

    it('answers 200 with the new key set to a poller holding the old (weak) ETag after keys change', async () => {
      const old = String((await t.app.inject({ url: '/.well-known/jwks.json' })).headers.etag);
      await t.app.keyStore.rotate();
      const res = await t.app.inject({ url: '/.well-known/jwks.json', headers: { 'if-none-match': `W/${old}` } });
      assert.equal(res.statusCode, 200);
      assert.notEqual(res.headers.etag, old);
      const again = await t.app.inject({
        url: '/.well-known/jwks.json',
        headers: { 'if-none-match': `W/${old}, W/${String(res.headers.etag)}` },
      });
      assert.equal(again.statusCode, 304);
    });
  });
}
