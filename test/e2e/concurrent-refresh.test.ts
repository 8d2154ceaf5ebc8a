import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { registerAndLogin, startTestApp, type TestApp, testConfig } from '../helpers/app.js';
import { testProviders } from '../helpers/databases.js';
import { freePort, postForm } from '../helpers/http.js';

const CONCURRENCY = 20;

for (const provider of testProviders()) {
  describe(`${CONCURRENCY} concurrent refreshes of one token (${provider})`, () => {
    let t: TestApp;
    before(async () => {
      t = await startTestApp(provider, { env: { REFRESH_REUSE_GRACE: '2' } });
    });
    after(() => t.close());

    it('all succeed with one identical successor, and the chain continues from it', async () => {
      const user = await registerAndLogin(t.app);
      const results = await Promise.all(
        Array.from({ length: CONCURRENCY }, () =>
          t.app.inject({
            method: 'POST',
            url: '/oauth/token',
            payload: { grant_type: 'refresh_token', refresh_token: user.refresh_token },
          }),
        ),
      );
      assert.deepEqual(
        results.map((r) => r.statusCode),
        Array(CONCURRENCY).fill(200),
        results
          .map((r) => r.body)
          .join('\n')
          .slice(0, 500),
      );
      const successors = new Set(results.map((r) => r.json().refresh_token));
      assert.equal(successors.size, 1, 'one chain, no forks');
      const [successor] = successors;
      const next = await t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'refresh_token', refresh_token: successor },
      });
      assert.equal(next.statusCode, 200);
      const sessions = await t.app.inject({
        url: '/v1/sessions',
        headers: { authorization: `Bearer ${next.json().access_token}` },
      });
      assert.equal(sessions.json().sessions.length, 1);
    });

    it('after the grace window, replaying the old token revokes the family', async () => {
      const user = await registerAndLogin(t.app);
      const first = await t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'refresh_token', refresh_token: user.refresh_token },
      });
      assert.equal(first.statusCode, 200);
      await new Promise((resolve) => setTimeout(resolve, 2100));
      const replays = await Promise.all(
        Array.from({ length: CONCURRENCY }, () =>
          t.app.inject({
            method: 'POST',
            url: '/oauth/token',
            payload: { grant_type: 'refresh_token', refresh_token: user.refresh_token },
          }),
        ),
      );
      for (const replay of replays) {
        assert.equal(replay.statusCode, 400);
        assert.equal(replay.json().error, 'invalid_grant');
      }
      const successor = await t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'refresh_token', refresh_token: first.json().refresh_token },
      });
      assert.equal(successor.json().error, 'invalid_grant');
    });
  });
}

if (testProviders().includes('postgres')) {
  describe('two instances sharing one PostgreSQL, over real HTTP', () => {
    let t: TestApp;
    let second: FastifyInstance;
    const bases: string[] = [];

    before(async () => {
      t = await startTestApp('postgres', { env: { REFRESH_REUSE_GRACE: '2' } });
      const port = await freePort();
      await t.app.listen({ host: '127.0.0.1', port });
      bases.push(`http://127.0.0.1:${port}`);
      second = buildApp(testConfig(t.databaseUrl, { REFRESH_REUSE_GRACE: '2' }));
      const port2 = await freePort();
      await second.listen({ host: '127.0.0.1', port: port2 });
      bases.push(`http://127.0.0.1:${port2}`);
    });
    after(async () => {
      await second.close();
      await t.close();
    });

    it('both publish the same signing key', async () => {
      const [a, b] = await Promise.all(
        bases.map((base) => fetch(`${base}/.well-known/jwks.json`).then((r) => r.json() as Promise<any>)),
      );
      assert.deepEqual(a, b);
      assert.equal(a.keys.length, 1);
    });

    it(`${CONCURRENCY} concurrent refreshes split across both instances share one successor`, async () => {
      const user = await registerAndLogin(t.app);
      const results = await Promise.all(
        Array.from({ length: CONCURRENCY }, (_, i) =>
          postForm(`${bases[i % 2]}/oauth/token`, { grant_type: 'refresh_token', refresh_token: user.refresh_token }),
        ),
      );
      assert.deepEqual(
        results.map((r) => r.status),
        Array(CONCURRENCY).fill(200),
      );
      assert.equal(new Set(results.map((r) => r.body.refresh_token)).size, 1);
    });

    it('a user registered on one logs in on the other; a session revoked on one is dead on the other', async () => {
      const [a, b] = bases as [string, string];
      const reg = await fetch(`${a}/v1/users`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'olga', password: 'olga password!' }),
      });
      assert.equal(reg.status, 201);
      const login = await postForm(`${b}/oauth/token`, {
        grant_type: 'password',
        username: 'olga',
        password: 'olga password!',
      });
      assert.equal(login.status, 200);
      assert.equal((await postForm(`${a}/oauth/revoke`, { token: login.body.refresh_token })).status, 200);
      const refresh = await postForm(`${b}/oauth/token`, {
        grant_type: 'refresh_token',
        refresh_token: login.body.refresh_token,
      });
      assert.equal(refresh.body.error, 'invalid_grant');
      const me = await fetch(`${b}/v1/me`, { headers: { authorization: `Bearer ${login.body.access_token}` } });
      assert.equal(me.status, 401);
    });
  });
}
