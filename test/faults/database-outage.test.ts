// PostgreSQL becomes unreachable while tessera runs, then comes back. The real
// server is shared by other tests, so the outage is made by a TCP proxy
// between tessera and it (see TcpProxy in ./helpers.ts).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { testConfig } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase, testProviders } from '../helpers/databases.js';
import { freePort } from '../helpers/http.js';
import { type CutMode, type HttpResponse, login, register, request, sleep, TcpProxy, type Tokens } from './helpers.js';

/**
 * The pool gives a new connection 3 s and a query 5 s (src/db/database.ts):
 * every request that needs the database must be answered within that, plus
 * some slack for a busy machine.
 */
const ANSWER_WITHIN_MS = 6500;
const PASSWORD = 'outage test password';

if (testProviders().includes('postgres')) {
  describe('PostgreSQL unreachable while the service runs (through a TCP proxy)', () => {
    let database: TestDatabase;
    let proxy: TcpProxy;
    let app: FastifyInstance;
    let base: string;

    before(async () => {
      database = await createTestDatabase('postgres');
      const target = new URL(database.url);
      proxy = await TcpProxy.start({ host: target.hostname, port: Number(target.port || 5432) });
      const port = await freePort();
      base = `http://127.0.0.1:${port}`;
      // KEY_REFRESH_INTERVAL=1: the key maintenance pass keeps failing during
      // the outage, which must not unload the keys held in memory.
      app = buildApp(testConfig(proxy.url(database.url), { ISSUER: base, KEY_REFRESH_INTERVAL: '1' }));
      await app.listen({ host: '127.0.0.1', port });
    });
    after(async () => {
      proxy?.restore();
      await app?.close();
      await proxy?.close();
      await database?.drop();
    });

    const oauthUnavailable = (what: string, res: HttpResponse) => {
      assert.equal(res.status, 503, `${what}: ${res.status} ${res.text}`);
      assert.equal(res.body?.error, 'temporarily_unavailable', `${what}: ${res.text}`);
      assert.ok(Number(res.headers['retry-after']) > 0, `${what}: Retry-After`);
      assert.equal(res.headers['cache-control'], 'no-store', `${what}: Cache-Control`);
    };
    const problemUnavailable = (what: string, res: HttpResponse) => {
      assert.equal(res.status, 503, `${what}: ${res.status} ${res.text}`);
      assert.match(String(res.headers['content-type']), /^application\/problem\+json/, what);
      assert.equal(res.body?.code, 'service_unavailable', `${what}: ${res.text}`);
      assert.ok(Number(res.headers['retry-after']) > 0, `${what}: Retry-After`);
    };

    for (const mode of ['refuse', 'blackhole', 'stall'] as CutMode[]) {
      it(`${mode}: database routes answer 503 quickly, keys and health keep answering, all recovers after the cut`, async (t) => {
        const username = `outage-${mode}`;
        await register(base, username, PASSWORD);
        const tokens: Tokens = await login(base, username, PASSWORD);
        const bearer = { authorization: `Bearer ${tokens.access_token}` };
        const jwksBefore = (await request(`${base}/.well-known/jwks.json`)).text;
        const routes = {
          login: () =>
            request(`${base}/oauth/token`, { form: { grant_type: 'password', username, password: PASSWORD } }),
          refresh: () =>
            request(`${base}/oauth/token`, {
              form: { grant_type: 'refresh_token', refresh_token: tokens.refresh_token },
            }),
          register: (suffix: string) =>
            request(`${base}/v1/users`, { json: { username: `${username}-${suffix}`, password: PASSWORD } }),
          me: () => request(`${base}/v1/me`, { headers: bearer }),
        };

        proxy.cut(mode);
        try {
          const [loginRes, refreshRes, registerRes, meRes, ready, jwks, discovery, health] = await Promise.all([
            routes.login(),
            routes.refresh(),
            routes.register('during'),
            routes.me(),
            request(`${base}/readyz`),
            request(`${base}/.well-known/jwks.json`),
            request(`${base}/.well-known/openid-configuration`),
            request(`${base}/healthz`),
          ]);
          oauthUnavailable('login', loginRes);
          oauthUnavailable('refresh', refreshRes);
          problemUnavailable('register', registerRes);
          problemUnavailable('/v1/me', meRes);
          for (const [what, res] of Object.entries({ loginRes, refreshRes, registerRes, meRes, ready })) {
            assert.ok(res.ms < ANSWER_WITHIN_MS, `${what} answered in ${Math.round(res.ms)} ms`);
          }
          t.diagnostic(
            `answered in ms: login ${Math.round(loginRes.ms)}, refresh ${Math.round(refreshRes.ms)}, ` +
              `register ${Math.round(registerRes.ms)}, me ${Math.round(meRes.ms)}, readyz ${Math.round(ready.ms)}`,
          );
          assert.equal(ready.status, 503, ready.text);
          assert.deepEqual(ready.body, {
            status: 'unavailable',
            checks: { database: 'unavailable', signingKey: 'ok' },
          });
          // What verifiers and probes need is served from memory.
          assert.equal(jwks.status, 200);
          assert.equal(jwks.text, jwksBefore);
          assert.equal(discovery.status, 200);
          assert.equal(discovery.body.issuer, base);
          assert.equal(health.status, 200);
          for (const [what, res] of Object.entries({ jwks, discovery, health })) {
            assert.ok(res.ms < 2000, `${what} answered in ${Math.round(res.ms)} ms`);
          }

          // 50 at once: each is answered (no unbounded queue, no hang), none waits
          // much longer than one connection or query timeout.
          const burst = await Promise.all(
            Array.from({ length: 50 }, (_, i) => {
              const kind = (['login', 'refresh', 'register', 'me'] as const)[i % 4]!;
              return (kind === 'register' ? routes.register(`burst-${i}`) : routes[kind]()).then((res) => ({
                kind,
                res,
              }));
            }),
          );
          const slow = burst
            .filter(({ res }) => res.ms >= ANSWER_WITHIN_MS)
            .map(({ kind, res }) => `${kind} ${res.ms}`);
          assert.deepEqual(slow, [], 'answered within the timeouts');
          for (const { kind, res } of burst) {
            if (kind === 'login' || kind === 'refresh') oauthUnavailable(kind, res);
            else problemUnavailable(kind, res);
          }
          // A key maintenance pass failed meanwhile (KEY_REFRESH_INTERVAL=1): the keys are still there.
          const stillSigning = await request(`${base}/.well-known/jwks.json`);
          assert.equal(stillSigning.text, jwksBefore);
        } finally {
          proxy.restore();
        }

        // Recovery, without a restart, within a few seconds.
        const restored = performance.now();
        for (;;) {
          const ready = await request(`${base}/readyz`);
          if (ready.status === 200) break;
          assert.ok(performance.now() - restored < 10_000, `still not ready 10 s after the restore: ${ready.text}`);
          await sleep(100);
        }
        t.diagnostic(`ready again ${Math.round(performance.now() - restored)} ms after the restore`);
        const again = await routes.login();
        assert.equal(again.status, 200, again.text);
        // Nothing was rotated during the outage: the original refresh token still works.
        const refreshed = await routes.refresh();
        assert.equal(refreshed.status, 200, refreshed.text);
        const me = await routes.me();
        assert.equal(me.status, 200, me.text);
        const registered = await routes.register('after');
        assert.equal(registered.status, 201, registered.text);
        const refreshedMe = await request(`${base}/v1/me`, {
          headers: { authorization: `Bearer ${refreshed.body.access_token}` },
        });
        assert.equal(refreshedMe.status, 200);
        assert.equal((await request(`${base}/healthz`)).status, 200, 'the process stayed up');
      });
    }
  });
}
