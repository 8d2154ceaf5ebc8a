import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwt } from 'jose';
import { registerAndLogin, startTestApp, type TestApp, TestClock } from '../helpers/app.js';
import { testProviders } from '../helpers/databases.js';

const FEED_SECRET = 'feed-secret-0123456789-abcdefghijklmnop';
const OTHER_SECRET = 'other-secret-0123456789-abcdefghijklmno';
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
const FEED_AUTH = basic('feed', FEED_SECRET);

interface Feed {
  now: string;
  windowStart: string;
  sessions: { sid: string; revokedAt: string }[];
  users: { sub: string; revokedBefore: string }[];
}

for (const provider of testProviders()) {
  describe(`GET /v1/revocations (${provider})`, () => {
    const clock = new TestClock();
    let t: TestApp;
    before(async () => {
      t = await startTestApp(provider, {
        env: { SERVICE_CREDENTIALS: `feed:${FEED_SECRET},other:${OTHER_SECRET}` },
        now: clock.now,
      });
    });
    after(() => t.close());

    const feed = async (query = ''): Promise<Feed> => {
      const res = await t.app.inject({ url: `/v1/revocations${query}`, headers: { authorization: FEED_AUTH } });
      assert.equal(res.statusCode, 200, res.body);
      return res.json();
    };
    const login = async (username: string, password: string) =>
      (
        await t.app.inject({
          method: 'POST',
          url: '/oauth/token',
          payload: { grant_type: 'password', username, password },
        })
      ).json() as { access_token: string; refresh_token: string };
    const sidOf = (accessToken: string) => String(decodeJwt(accessToken).sid);
    const bearer = (accessToken: string) => ({ authorization: `Bearer ${accessToken}` });
    /** The published rule, exactly as a downstream verifier applies it. */
    const revokedBy = (body: Feed, accessToken: string) => {
      const { sid, sub, iat } = decodeJwt(accessToken);
      return (
        body.sessions.some((entry) => entry.sid === sid) ||
        body.users.some((entry) => entry.sub === sub && Number(iat) * 1000 < Date.parse(entry.revokedBefore))
      );
    };

    it('requires service credentials: none, wrong, unknown, malformed or a user token get 401 with a Basic challenge', async () => {
      const user = await registerAndLogin(t.app);
      for (const authorization of [
        undefined,
        basic('feed', OTHER_SECRET),
        basic('feed', `${FEED_SECRET}x`),
        basic('feed', FEED_SECRET.slice(0, -1)),
        basic('nobody', FEED_SECRET),
        basic('other', FEED_SECRET),
        basic('', FEED_SECRET),
        'Basic',
        'Basic !!!not-base64!!!',
        `Basic ${Buffer.from(`feed${FEED_SECRET}`).toString('base64')}`,
        `Bearer ${user.access_token}`,
        FEED_AUTH.replace('Basic ', 'Digest '),
      ]) {
        const res = await t.app.inject({
          url: '/v1/revocations',
          headers: authorization === undefined ? {} : { authorization },
        });
        assert.equal(res.statusCode, 401, String(authorization));
        assert.equal(res.headers['www-authenticate'], 'Basic realm="tessera"');
        assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
        assert.equal(res.json().code, 'service_unauthorized');
        assert.equal(res.headers['cache-control'], undefined, 'a 401 is not cacheable');
        assert.doesNotMatch(res.body, /secret/i);
      }
      // Credentials are checked before the query: no hint about valid parameters without them.
      const unauthenticatedBadQuery = await t.app.inject({ url: '/v1/revocations?since=garbage' });
      assert.equal(unauthenticatedBadQuery.statusCode, 401);

      const other = await t.app.inject({
        url: '/v1/revocations',
        headers: { authorization: basic('other', OTHER_SECRET) },
      });
      assert.equal(other.statusCode, 200);
      // The scheme name is case-insensitive (RFC 7235 §2.1).
      const lower = await t.app.inject({
        url: '/v1/revocations',
        headers: { authorization: FEED_AUTH.replace('Basic', 'basic') },
      });
      assert.equal(lower.statusCode, 200);
    });

    it('answers exactly {now, windowStart, sessions, users}, private and cacheable for 5 s', async () => {
      const res = await t.app.inject({ url: '/v1/revocations', headers: { authorization: FEED_AUTH } });
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['cache-control'], 'private, max-age=5');
      const body = res.json();
      assert.deepEqual(Object.keys(body).sort(), ['now', 'sessions', 'users', 'windowStart']);
      assert.equal(body.now, new Date(clock.ms).toISOString());
      const { accessTokenTtl, clockLeeway } = t.config;
      assert.equal(body.windowStart, new Date(clock.ms - (accessTokenTtl + clockLeeway) * 1000).toISOString());
    });

    it('logout everywhere lists every session and the user; later tokens are not affected', async () => {
      const user = await registerAndLogin(t.app);
      const tablet = await login(user.username, user.password);
      // iat has whole seconds: a second later every token above has iat * 1000 < the revocation time.
      clock.advance(1);
      const res = await t.app.inject({ method: 'DELETE', url: '/v1/sessions', headers: bearer(user.access_token) });
      assert.equal(res.statusCode, 204);
      const revokedAt = new Date(clock.ms).toISOString();

      const body = await feed();
      for (const token of [user.access_token, tablet.access_token]) {
        const entry = body.sessions.find((session) => session.sid === sidOf(token));
        assert.deepEqual(entry, { sid: sidOf(token), revokedAt });
        assert.equal(revokedBy(body, token), true);
      }
      assert.deepEqual(
        body.users.filter((entry) => entry.sub === user.userId),
        [{ sub: user.userId, revokedBefore: revokedAt }],
      );
      for (const entry of [...body.sessions, ...body.users]) {
        assert.deepEqual(Object.keys(entry).sort(), 'sid' in entry ? ['revokedAt', 'sid'] : ['revokedBefore', 'sub']);
      }

      // Logging in again afterwards gives tokens the feed does not revoke, and tessera accepts them too.
      clock.advance(1);
      const fresh = await login(user.username, user.password);
      assert.equal(revokedBy(await feed(), fresh.access_token), false);
      const me = await t.app.inject({ url: '/v1/me', headers: bearer(fresh.access_token) });
      assert.equal(me.statusCode, 200);
    });

    it('a password change lists the other sessions by sid, and keeps the caller’s session and token', async () => {
      const user = await registerAndLogin(t.app);
      const laptop = await login(user.username, user.password);
      const phone = await login(user.username, user.password);
      clock.advance(1);
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/me/password',
        headers: bearer(user.access_token),
        payload: { currentPassword: user.password, newPassword: 'another long passphrase' },
      });
      assert.equal(res.statusCode, 204);

      const body = await feed();
      const revokedAt = new Date(clock.ms).toISOString();
      for (const token of [laptop.access_token, phone.access_token]) {
        assert.deepEqual(
          body.sessions.find((session) => session.sid === sidOf(token)),
          { sid: sidOf(token), revokedAt },
        );
        assert.equal(revokedBy(body, token), true);
      }
      assert.equal(revokedBy(body, user.access_token), false, 'the caller’s own token survives');
      assert.equal(
        body.users.some((entry) => entry.sub === user.userId),
        false,
        'no per-user entry: it would kill the caller’s token too',
      );
      const me = await t.app.inject({ url: '/v1/me', headers: bearer(user.access_token) });
      assert.equal(me.statusCode, 200);
    });

    it('ending one session (DELETE /v1/sessions/:id, /oauth/revoke) lists that session only', async () => {
      const user = await registerAndLogin(t.app);
      const laptop = await login(user.username, user.password);
      const phone = await login(user.username, user.password);
      const deleted = await t.app.inject({
        method: 'DELETE',
        url: `/v1/sessions/${sidOf(laptop.access_token)}`,
        headers: bearer(user.access_token),
      });
      assert.equal(deleted.statusCode, 204);
      const revoked = await t.app.inject({
        method: 'POST',
        url: '/oauth/revoke',
        payload: { token: phone.refresh_token },
      });
      assert.equal(revoked.statusCode, 200);

      const body = await feed();
      assert.equal(revokedBy(body, laptop.access_token), true);
      assert.equal(revokedBy(body, phone.access_token), true);
      assert.equal(revokedBy(body, user.access_token), false);
      assert.equal(
        body.users.some((entry) => entry.sub === user.userId),
        false,
      );
    });

    it('disabling a user lists the user and all their sessions', async () => {
      const user = await registerAndLogin(t.app);
      clock.advance(1);
      assert.ok(await t.app.services.users.disable(user.username));
      const body = await feed();
      const revokedAt = new Date(clock.ms).toISOString();
      assert.deepEqual(
        body.users.filter((entry) => entry.sub === user.userId),
        [{ sub: user.userId, revokedBefore: revokedAt }],
      );
      assert.deepEqual(
        body.sessions.find((session) => session.sid === sidOf(user.access_token)),
        { sid: sidOf(user.access_token), revokedAt },
      );
    });

    it('?since= returns only entries strictly after it (and never before the window)', async () => {
      const first = await registerAndLogin(t.app);
      clock.advance(1);
      await t.app.inject({ method: 'DELETE', url: '/v1/sessions', headers: bearer(first.access_token) });
      const firstAt = new Date(clock.ms).toISOString();
      const checkpoint = (await feed()).now;

      clock.advance(1);
      const second = await registerAndLogin(t.app);
      clock.advance(1);
      await t.app.inject({ method: 'DELETE', url: '/v1/sessions', headers: bearer(second.access_token) });

      const delta = await feed(`?since=${encodeURIComponent(checkpoint)}`);
      assert.deepEqual(delta.sessions, [
        { sid: sidOf(second.access_token), revokedAt: new Date(clock.ms).toISOString() },
      ]);
      assert.deepEqual(delta.users, [{ sub: second.userId, revokedBefore: new Date(clock.ms).toISOString() }]);
      assert.equal(delta.windowStart, (await feed()).windowStart, 'since does not move windowStart');

      // Strictly after: an entry exactly at `since` is not repeated.
      const atFirst = await feed(`?since=${encodeURIComponent(firstAt)}`);
      assert.equal(
        atFirst.sessions.some((entry) => entry.sid === sidOf(first.access_token)),
        false,
      );
      assert.equal(
        atFirst.users.some((entry) => entry.sub === second.userId),
        true,
      );

      // A since before the window is the window; one in the future is nothing; any zone works.
      assert.deepEqual(await feed('?since=1970-01-01T00:00:00Z'), await feed());
      const future = await feed(`?since=${encodeURIComponent(new Date(clock.ms + 60_000).toISOString())}`);
      assert.deepEqual([future.sessions, future.users], [[], []]);
      const offset = new Date(Date.parse(checkpoint)).toISOString().replace('Z', '+00:00');
      assert.deepEqual((await feed(`?since=${encodeURIComponent(offset)}`)).sessions, delta.sessions);
    });

    it('drops an entry once every token it could affect has expired (ACCESS_TOKEN_TTL + CLOCK_LEEWAY)', async () => {
      const user = await registerAndLogin(t.app);
      clock.advance(1);
      await t.app.inject({ method: 'DELETE', url: '/v1/sessions', headers: bearer(user.access_token) });
      const revokedAt = clock.ms;
      const listed = (body: Feed) => ({
        session: body.sessions.some((entry) => entry.sid === sidOf(user.access_token)),
        user: body.users.some((entry) => entry.sub === user.userId),
      });
      const window = t.config.accessTokenTtl + t.config.clockLeeway;

      clock.advance(window - 1);
      assert.deepEqual(listed(await feed()), { session: true, user: true });
      clock.advance(1);
      const edge = await feed();
      assert.equal(edge.windowStart, new Date(revokedAt).toISOString());
      assert.deepEqual(listed(edge), { session: false, user: false }, 'an entry exactly at windowStart is out');
      clock.advance(1);
      assert.deepEqual(listed(await feed()), { session: false, user: false });
      assert.deepEqual(listed(await feed('?since=1970-01-01T00:00:00Z')), { session: false, user: false });
    });

    it('answers 400 validation_failed for a since that is not an RFC 3339 date-time', async () => {
      for (const since of [
        'garbage',
        '',
        '2030-02-30T00:00:00Z',
        '2030-01-01T00:00:00',
        '2030-01-01',
        '2030-06-30T23:59:60Z',
        '2030-01-01T00:00:00+02',
        '1893456000000',
        `2030-01-01T00:00:00Z&since=2030-01-02T00:00:00Z`,
      ]) {
        const res = await t.app.inject({
          url: `/v1/revocations?since=${since.includes('&') ? since : encodeURIComponent(since)}`,
          headers: { authorization: FEED_AUTH },
        });
        assert.equal(res.statusCode, 400, since);
        assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
        assert.equal(res.json().code, 'validation_failed', since);
        assert.match(res.json().detail, /since/);
      }
    });

    it('is in the OpenAPI document with its response schema', async () => {
      const doc = (await t.app.inject({ url: '/docs/json' })).json();
      const operation = doc.paths['/v1/revocations'].get;
      assert.deepEqual(Object.keys(operation.responses['200'].content['application/json'].schema.properties).sort(), [
        'now',
        'sessions',
        'users',
        'windowStart',
      ]);
      assert.ok(operation.responses['401']);
    });
  });
}
