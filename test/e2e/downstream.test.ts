import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { buildApp } from '../../src/app.js';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, testProviders } from '../helpers/databases.js';
import { freePort, postForm } from '../helpers/http.js';

/**
 * A downstream service as a team would write it: it knows only tessera's JWKS
 * URL, issuer and audience, and verifies tokens locally with jose. No shared secret.
 */
function downstreamService(issuer: string, audience: string): FastifyInstance {
  const jwks = createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`));
  const app = Fastify();
  app.get('/orders', async (request, reply) => {
    const token = request.headers.authorization?.replace(/^Bearer /, '') ?? '';
    try {
      const { payload } = await jwtVerify(token, jwks, { issuer, audience, algorithms: ['RS256'], typ: 'at+jwt' });
      return { owner: payload.sub, username: payload.username };
    } catch {
      return reply.code(401).send({ error: 'invalid_token' });
    }
  });
  return app;
}

for (const provider of testProviders()) {
  describe(`end to end over real HTTP with a downstream service (${provider})`, () => {
    let tessera: FastifyInstance;
    let downstream: FastifyInstance;
    let base: string;
    let api: string;
    let drop: () => Promise<void>;

    before(async () => {
      const database = await createTestDatabase(provider);
      drop = database.drop;
      const port = await freePort();
      base = `http://127.0.0.1:${port}`;
      tessera = buildApp(testConfig(database.url, { ISSUER: base, AUDIENCE: 'orders-api', REFRESH_REUSE_GRACE: '1' }));
      await tessera.listen({ host: '127.0.0.1', port });
      downstream = downstreamService(base, 'orders-api');
      api = await downstream.listen({ host: '127.0.0.1', port: 0 });
    });
    after(async () => {
      await downstream.close();
      await tessera.close();
      await drop();
    });

    it('register -> login -> downstream call -> refresh -> reuse kills the session -> logout', async () => {
      const register = await fetch(`${base}/v1/users`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'nora', password: 'nora’s long password' }),
      });
      assert.equal(register.status, 201);
      const userId = ((await register.json()) as { id: string }).id;

      const login = await postForm(`${base}/oauth/token`, {
        grant_type: 'password',
        username: 'nora',
        password: 'nora’s long password',
      });
      assert.equal(login.status, 200);

      const call = async (accessToken: string) =>
        fetch(`${api}/orders`, { headers: { authorization: `Bearer ${accessToken}` } });
      const orders = await call(login.body.access_token);
      assert.equal(orders.status, 200);
      assert.deepEqual(await orders.json(), { owner: userId, username: 'nora' });
      assert.equal((await call(`${login.body.access_token}x`)).status, 401);

      const refreshed = await postForm(`${base}/oauth/token`, {
        grant_type: 'refresh_token',
        refresh_token: login.body.refresh_token,
      });
      assert.equal(refreshed.status, 200);
      assert.equal((await call(refreshed.body.access_token)).status, 200);

      // Past the 1-second grace window, the first refresh token is a replay.
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const replay = await postForm(`${base}/oauth/token`, {
        grant_type: 'refresh_token',
        refresh_token: login.body.refresh_token,
      });
      assert.equal(replay.status, 400);
      assert.equal(replay.body.error, 'invalid_grant');
      const dead = await postForm(`${base}/oauth/token`, {
        grant_type: 'refresh_token',
        refresh_token: refreshed.body.refresh_token,
      });
      assert.equal(dead.status, 400, 'the whole family is revoked');
      const me = await fetch(`${base}/v1/me`, { headers: { authorization: `Bearer ${refreshed.body.access_token}` } });
      assert.equal(me.status, 401);

      // A fresh login, then logout through RFC 7009.
      const again = await postForm(`${base}/oauth/token`, {
        grant_type: 'password',
        username: 'nora',
        password: 'nora’s long password',
      });
      assert.equal(again.status, 200);
      const logout = await postForm(`${base}/oauth/revoke`, { token: again.body.refresh_token });
      assert.equal(logout.status, 200);
      const afterLogout = await postForm(`${base}/oauth/token`, {
        grant_type: 'refresh_token',
        refresh_token: again.body.refresh_token,
      });
      assert.equal(afterLogout.body.error, 'invalid_grant');
    });
  });
}
