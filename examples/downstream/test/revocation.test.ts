import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { TestClock } from '../../../test/helpers/app.js';
import { buildDownstream, type Downstream, type DownstreamOptions, RevocationFeed } from '../downstream.js';
import {
  AUDIENCE,
  inspect,
  type Login,
  login,
  registerAndLogin,
  SERVICE_ID,
  SERVICE_SECRET,
  sleep,
  startTessera,
  type Tessera,
} from './tessera.js';

const credentials = { serviceId: SERVICE_ID, serviceSecret: SERVICE_SECRET };

/** The status of GET /v1/whoami, and its challenge, for a bearer token. */
async function call(base: string, token: string): Promise<{ status: number; challenge: string | null }> {
  const response = await fetch(`${base}/v1/whoami`, { headers: { authorization: `Bearer ${token}` } });
  await response.body?.cancel();
  return { status: response.status, challenge: response.headers.get('www-authenticate') };
}

async function logoutEverywhere(issuer: string, user: Login): Promise<void> {
  const response = await fetch(`${issuer}/v1/sessions`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${user.accessToken}` },
  });
  assert.equal(response.status, 204);
}

/** Ends one session through RFC 7009 revocation of its refresh token. */
async function logout(issuer: string, user: Login): Promise<void> {
  const response = await fetch(`${issuer}/oauth/revoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token: user.refreshToken }),
  });
  assert.equal(response.status, 200);
}

/** Feed polls tessera answered. */
const feedPolls = (tessera: Tessera) => tessera.seen.filter((request) => request.path === '/v1/revocations');

/** Builds and starts a downstream service with the revocation feed; the first poll runs before listen resolves. */
async function startDownstream(
  tessera: Tessera,
  options: Partial<DownstreamOptions> = {},
): Promise<Downstream & { base: string; feed: RevocationFeed }> {
  const downstream = buildDownstream({
    issuer: tessera.issuer,
    audience: AUDIENCE,
    // Only explicit polls, unless a test says otherwise: what the service knows is then exact.
    revocations: { ...credentials, intervalSeconds: 3600 },
    ...options,
  });
  const base = await downstream.app.listen({ host: '127.0.0.1', port: 0 });
  if (!downstream.revocations) throw new Error('no revocation feed');
  return { ...downstream, base, feed: downstream.revocations };
}

describe('revocations reach the downstream service through the feed', () => {
  let tessera: Tessera;
  const closing: Array<() => Promise<unknown>> = [];

  before(async () => {
    tessera = await startTessera();
  });
  after(async () => {
    for (const close of closing) await close();
    await tessera.close();
  });

  for (const verifier of ['jose', 'fastify-jwt'] as const) {
    describe(`verifier: ${verifier}`, () => {
      let downstream: Downstream & { base: string; feed: RevocationFeed };
      before(async () => {
        downstream = await startDownstream(tessera, { verifier });
        closing.push(() => downstream.app.close());
      });

      it('logout everywhere: the user’s older tokens are refused after one poll', async () => {
        const user = await registerAndLogin(tessera.issuer);
        const otherDevice = await login(tessera.issuer, user.username, user.password, user.userId);
        const bystander = await registerAndLogin(tessera.issuer);
        await downstream.feed.pollNow();
        assert.equal((await call(downstream.base, user.accessToken)).status, 200);
        assert.equal((await call(downstream.base, otherDevice.accessToken)).status, 200);

        await logoutEverywhere(tessera.issuer, user);
        // Verified locally: until the next poll the service cannot know (the documented delay).
        assert.equal((await call(downstream.base, user.accessToken)).status, 200, 'not yet polled');

        await downstream.feed.pollNow();
        for (const token of [user.accessToken, otherDevice.accessToken]) {
          const result = await call(downstream.base, token);
          assert.equal(result.status, 401);
          assert.equal(result.challenge, 'Bearer error="invalid_token"');
        }
        assert.equal((await call(downstream.base, bystander.accessToken)).status, 200, 'other users are unaffected');
        // The user entry alone covers tokens of sessions the feed does not list.
        const { iat } = inspect(user.accessToken).claims as { iat: number };
        assert.equal(downstream.feed.isRevoked({ sid: randomUUID(), sub: user.userId, iat }), true);
        assert.equal(downstream.feed.isRevoked({ sid: randomUUID(), sub: user.userId, iat: iat + 5 }), false);

        // Only tokens issued before the revocation are revoked (iat has whole seconds).
        await sleep(1100);
        const later = await login(tessera.issuer, user.username, user.password, user.userId);
        assert.equal((await call(downstream.base, later.accessToken)).status, 200, 'a login afterwards works');
      });

      it('ending one session refuses that session’s tokens only', async () => {
        const user = await registerAndLogin(tessera.issuer);
        const otherDevice = await login(tessera.issuer, user.username, user.password, user.userId);
        await logout(tessera.issuer, user);
        await downstream.feed.pollNow();
        assert.equal((await call(downstream.base, user.accessToken)).status, 401);
        assert.equal((await call(downstream.base, otherDevice.accessToken)).status, 200);
      });
    });
  }

  it('polls on its own timer, and stops when the service closes', async () => {
    const user = await registerAndLogin(tessera.issuer);
    const downstream = await startDownstream(tessera, { revocations: { ...credentials, intervalSeconds: 0.1 } });
    let closed = false;
    closing.push(async () => closed || downstream.app.close());
    assert.equal((await call(downstream.base, user.accessToken)).status, 200);
    await logoutEverywhere(tessera.issuer, user);
    let status = 200;
    for (let waited = 0; waited < 3000 && status === 200; waited += 50) {
      await sleep(50);
      status = (await call(downstream.base, user.accessToken)).status;
    }
    assert.equal(status, 401, 'refused without an explicit poll');

    await downstream.app.close();
    closed = true;
    const polls = feedPolls(tessera).length;
    await sleep(500);
    assert.equal(feedPolls(tessera).length, polls, 'no poll after close');
  });

  it('asks for entries since the previous `now` minus the overlap', async () => {
    const feed = new RevocationFeed({ issuer: tessera.issuer, ...credentials, overlapSeconds: 7 });
    await feed.pollNow();
    const first = feed.status().now;
    assert.ok(first);
    await feed.pollNow();
    const [previous, last] = feedPolls(tessera).slice(-2);
    assert.equal(previous?.query.get('since'), null, 'the first poll asks for the whole window');
    assert.equal(last?.query.get('since'), new Date(Date.parse(first) - 7000).toISOString());
  });

  it('keeps entries that later polls no longer list', async () => {
    const user = await registerAndLogin(tessera.issuer);
    const claims = inspect(user.accessToken).claims as { sid: string; sub: string; iat: number };
    // No overlap: the polls after the one that brought the entry ask past it.
    const feed = new RevocationFeed({ issuer: tessera.issuer, ...credentials, overlapSeconds: 0 });
    await feed.pollNow();
    assert.equal(feed.isRevoked(claims), false);
    await logout(tessera.issuer, user);
    await feed.pollNow();
    assert.equal(feed.isRevoked(claims), true);
    // The entry was revoked before this `now`; later polls ask only for entries after it.
    const broughtAt = Date.parse(feed.status().now ?? '');
    await sleep(20);
    await feed.pollNow();
    await feed.pollNow();
    const since = Date.parse(feedPolls(tessera).at(-1)?.query.get('since') ?? '');
    assert.ok(since >= broughtAt, 'the last poll asked past the entry');
    assert.equal(feed.isRevoked(claims), true, 'still revoked');
  });

  it('refuses every token with 503 while the feed refuses its credentials', async () => {
    const user = await registerAndLogin(tessera.issuer);
    const downstream = await startDownstream(tessera, {
      revocations: { serviceId: SERVICE_ID, serviceSecret: `${SERVICE_SECRET}-wrong`, intervalSeconds: 3600 },
    });
    closing.push(() => downstream.app.close());
    await assert.rejects(downstream.feed.pollNow(), /401/);
    const response = await fetch(`${downstream.base}/v1/whoami`, {
      headers: { authorization: `Bearer ${user.accessToken}` },
    });
    assert.equal(response.status, 503);
    assert.equal(response.headers.get('retry-after'), '5');
  });
});

describe('revocation feed: window and outages', () => {
  it('drops entries once they fall out of the feed window', async () => {
    const clock = new TestClock();
    // A 30 s window: ACCESS_TOKEN_TTL 30 + CLOCK_LEEWAY 0.
    const tessera = await startTessera({ now: clock.now, env: { ACCESS_TOKEN_TTL: '30', CLOCK_LEEWAY: '0' } });
    try {
      const user = await registerAndLogin(tessera.issuer);
      const claims = inspect(user.accessToken).claims as { sid: string; sub: string; iat: number };
      await logoutEverywhere(tessera.issuer, user);
      const feed = new RevocationFeed({ issuer: tessera.issuer, ...credentials });
      await feed.pollNow();
      assert.equal(feed.isRevoked(claims), true);
      assert.deepEqual([feed.status().sessions, feed.status().users], [1, 1]);

      clock.advance(29);
      await feed.pollNow();
      assert.deepEqual([feed.status().sessions, feed.status().users], [1, 1], 'still inside the window');

      clock.advance(2);
      await feed.pollNow();
      assert.deepEqual([feed.status().sessions, feed.status().users], [0, 0], 'out of the window');
      assert.equal(feed.status().windowStart, new Date(clock.now() - 30_000).toISOString());
    } finally {
      await tessera.close();
    }
  });

  it('keeps the last state while tessera is down, fails closed once stale, and recovers', async () => {
    const tessera = await startTessera();
    const downstream = await startDownstream(tessera, {
      revocations: { ...credentials, intervalSeconds: 3600, maxStalenessSeconds: 2 },
    });
    try {
      const revoked = await registerAndLogin(tessera.issuer);
      const valid = await registerAndLogin(tessera.issuer);
      await logout(tessera.issuer, revoked);
      await downstream.feed.pollNow();
      assert.equal((await call(downstream.base, valid.accessToken)).status, 200);
      assert.equal((await call(downstream.base, revoked.accessToken)).status, 401);
      const lastSuccess = Date.parse(downstream.feed.status().lastSuccessAt ?? '');

      await tessera.stop();
      await assert.rejects(downstream.feed.pollNow());
      assert.equal(downstream.feed.status().sessions, 1, 'the last state is kept');
      assert.equal((await call(downstream.base, revoked.accessToken)).status, 401);

      await sleep(lastSuccess + 2100 - Date.now());
      assert.equal(downstream.feed.fresh, false);
      assert.equal((await call(downstream.base, valid.accessToken)).status, 503, 'stale: fail closed');
      assert.equal((await call(downstream.base, revoked.accessToken)).status, 401, 'a known revocation still holds');

      await tessera.restart();
      await downstream.feed.pollNow();
      assert.equal((await call(downstream.base, valid.accessToken)).status, 200);
      assert.equal((await call(downstream.base, revoked.accessToken)).status, 401);
    } finally {
      await downstream.app.close();
      await tessera.close();
    }
  });
});
