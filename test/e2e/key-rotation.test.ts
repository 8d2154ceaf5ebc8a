import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, decodeProtectedHeader, type JSONWebKeySet, jwtVerify } from 'jose';
import { registerAndLogin, startTestApp, type TestApp, TestClock } from '../helpers/app.js';
import { testProviders } from '../helpers/databases.js';

/** A short schedule: a key signs for 60 s, is published 20 s before, tokens live 30 s. */
const SCHEDULE = {
  ACCESS_TOKEN_TTL: '30',
  CLOCK_LEEWAY: '5',
  KEY_REFRESH_INTERVAL: '1',
  KEY_PUBLISH_LEAD: '20',
  KEY_ROTATION_INTERVAL: '60',
  JWKS_MAX_AGE: '3600',
};
const SIMULATED_SECONDS = 220;

/**
 * A downstream verifier as real ones behave: it caches the JWKS for the
 * response's max-age and only then fetches it again. It deliberately does NOT
 * refetch on an unknown `kid`, so it only succeeds if every key was published
 * long enough before it signed.
 */
class CachingVerifier {
  #jwks: JSONWebKeySet | null = null;
  #expiresAt = 0;
  fetches = 0;

  constructor(
    private readonly clock: TestClock,
    private readonly fetchJwks: () => Promise<{ body: JSONWebKeySet; maxAge: number }>,
    private readonly expected: { issuer: string; audience: string },
  ) {}

  async verify(token: string): Promise<void> {
    if (!this.#jwks || this.clock.now() >= this.#expiresAt) {
      const { body, maxAge } = await this.fetchJwks();
      this.fetches += 1;
      this.#jwks = body;
      this.#expiresAt = this.clock.now() + maxAge * 1000;
    }
    await jwtVerify(token, createLocalJWKSet(this.#jwks), {
      ...this.expected,
      algorithms: ['RS256'],
      typ: 'at+jwt',
      currentDate: new Date(this.clock.now()),
      clockTolerance: 5,
    });
  }
}

for (const provider of testProviders()) {
  describe(`scheduled key rotation across two instances (${provider})`, () => {
    const clock = new TestClock();
    let a: TestApp;
    let b: TestApp;
    before(async () => {
      a = await startTestApp(provider, { env: SCHEDULE, now: clock.now });
      b = await startTestApp(provider, { env: SCHEDULE, now: clock.now, databaseUrl: a.databaseUrl });
    });
    after(async () => {
      await b.app.close();
      await a.close();
    });

    it('the JWKS max-age is capped below the publication lead', async () => {
      const res = await a.app.inject({ url: '/.well-known/jwks.json' });
      const maxAge = Number(/max-age=(\d+)/.exec(String(res.headers['cache-control']))?.[1]);
      assert.ok(maxAge > 0 && maxAge < Number(SCHEDULE.KEY_PUBLISH_LEAD) / 2, `max-age ${maxAge}`);
    });

    it('keeps every valid token verifiable through several rotations, and drops removed keys', async () => {
      const instances = [a, b];
      const issued: Array<{ token: string; exp: number; kid: string }> = [];
      const signingKids = new Set<string>();
      // Each instance keeps its own refresh chain and mints a token every second.
      const chains = await Promise.all(instances.map((instance) => registerAndLogin(instance.app)));
      const refreshTokens = chains.map((chain) => chain.refresh_token);
      let fetchFrom = 0;
      const verifier = new CachingVerifier(
        clock,
        async () => {
          // Like a load balancer: successive fetches land on either instance.
          const instance = instances[fetchFrom++ % instances.length]!;
          const res = await instance.app.inject({ url: '/.well-known/jwks.json' });
          const maxAge = Number(/max-age=(\d+)/.exec(String(res.headers['cache-control']))?.[1]);
          return { body: res.json() as JSONWebKeySet, maxAge };
        },
        { issuer: a.config.issuer, audience: a.config.audience },
      );
      let verified = 0;
      const failures: string[] = [];

      for (let second = 0; second < SIMULATED_SECONDS; second++) {
        clock.advance(1);
        // Every instance runs its maintenance pass (as its timer does), in varying order.
        const order = second % 2 === 0 ? instances : [...instances].reverse();
        for (const instance of order) await instance.app.keyStore.maintain();

        const currentKeys = await a.app.db.prisma.signingKey.count({ where: { status: 'current' } });
        assert.equal(currentKeys, 1, `exactly one current key at t+${second}s`);

        for (const [index, instance] of instances.entries()) {
          const res = await instance.app.inject({
            method: 'POST',
            url: '/oauth/token',
            payload: { grant_type: 'refresh_token', refresh_token: refreshTokens[index] },
          });
          assert.equal(res.statusCode, 200, res.body);
          const body = res.json();
          refreshTokens[index] = body.refresh_token;
          const kid = decodeProtectedHeader(body.access_token).kid as string;
          signingKids.add(kid);
          issued.push({ token: body.access_token, exp: clock.now() + 30_000, kid });
          // The other instance accepts it too.
          const other = instances[(index + 1) % instances.length]!;
          const me = await other.app.inject({
            url: '/v1/me',
            headers: { authorization: `Bearer ${body.access_token}` },
          });
          if (me.statusCode !== 200) failures.push(`t+${second}s /v1/me on the other instance: ${me.statusCode}`);
        }

        for (const entry of issued) {
          if (entry.exp <= clock.now()) continue;
          try {
            await verifier.verify(entry.token);
            verified += 1;
          } catch (error) {
            failures.push(`t+${second}s token of ${entry.kid}: ${(error as Error).message}`);
          }
        }
      }

      assert.deepEqual(failures, []);
      assert.ok(verified > 1000, `verified ${verified} tokens`);
      // 220 s with 60 s per key: at least three keys took their turn signing.
      assert.ok(signingKids.size >= 3, `keys used: ${signingKids.size}`);
      assert.ok(verifier.fetches > 10);

      // The first key was retired long ago and is gone: out of the JWKS and the
      // database, and a token it signed fails even for a verifier whose clock
      // still considers the token fresh.
      const first = issued[0]!;
      const jwks = (await b.app.inject({ url: '/.well-known/jwks.json' })).json() as JSONWebKeySet;
      assert.ok(!jwks.keys.some((key) => key.kid === first.kid));
      assert.equal(await a.app.db.prisma.signingKey.count({ where: { kid: first.kid } }), 0);
      await assert.rejects(
        jwtVerify(first.token, createLocalJWKSet(jwks), {
          issuer: a.config.issuer,
          audience: a.config.audience,
          algorithms: ['RS256'],
          currentDate: new Date(first.exp - 20_000),
        }),
        { code: 'ERR_JWKS_NO_MATCHING_KEY' },
      );
      const me = await a.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${first.token}` } });
      assert.equal(me.statusCode, 401);
    });

    it('a revoked key leaves the JWKS at once and its tokens stop verifying on both instances', async () => {
      const session = await registerAndLogin(a.app);
      const kid = decodeProtectedHeader(session.access_token).kid as string;
      const { revoked, replacement } = await a.app.keyStore.revoke(kid);
      assert.ok(revoked);
      assert.ok(replacement && replacement !== kid);
      const jwks = (await a.app.inject({ url: '/.well-known/jwks.json' })).json() as JSONWebKeySet;
      assert.ok(!jwks.keys.some((key) => key.kid === kid));
      const meHere = await a.app.inject({
        url: '/v1/me',
        headers: { authorization: `Bearer ${session.access_token}` },
      });
      assert.equal(meHere.statusCode, 401);
      // The other instance follows at its next maintenance pass.
      await b.app.keyStore.maintain();
      const meThere = await b.app.inject({
        url: '/v1/me',
        headers: { authorization: `Bearer ${session.access_token}` },
      });
      assert.equal(meThere.statusCode, 401);
      // The session itself survives: its refresh token yields a token from the new key.
      const refreshed = await b.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'refresh_token', refresh_token: session.refresh_token },
      });
      assert.equal(refreshed.statusCode, 200);
      assert.equal(decodeProtectedHeader(refreshed.json().access_token).kid, replacement);
    });
  });
}
