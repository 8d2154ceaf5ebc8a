import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { decodeJwt } from 'jose';
import { registerAndLogin, startTestApp, type TestApp, TestClock } from '../helpers/app.js';
import { testProviders } from '../helpers/databases.js';

/** Refresh tokens are base64url(session id (16) ‖ generation (4, big-endian) ‖ HMAC-SHA256 (32)). */
const SID_BYTES = 16;
const GENERATION_BYTES = 4;

const decode = (token: string) => Buffer.from(token, 'base64url');
const encode = (bytes: Buffer) => bytes.toString('base64url');
const splice = (sessionFrom: string, restFrom: string) =>
  encode(Buffer.concat([decode(sessionFrom).subarray(0, SID_BYTES), decode(restFrom).subarray(SID_BYTES)]));
const withGeneration = (token: string, generation: number) => {
  const bytes = decode(token);
  bytes.writeUInt32BE(generation, SID_BYTES);
  return encode(bytes);
};

/** Asserts an RFC 6749 §5.2 error: status, exactly {error, error_description}, no-store. */
function assertOAuthError(res: LightMyRequestResponse, error: string, status: number, label: string): void {
  assert.equal(res.statusCode, status, `${label}: ${res.statusCode} ${res.body.slice(0, 200)}`);
  assert.equal(res.headers['cache-control'], 'no-store', `${label}: cache-control`);
  assert.match(String(res.headers['content-type']), /^application\/json/, `${label}: content-type`);
  const body = res.json();
  assert.deepEqual(Object.keys(body).sort(), ['error', 'error_description'], `${label}: ${res.body.slice(0, 200)}`);
  assert.equal(body.error, error, `${label}: ${res.body.slice(0, 200)}`);
  assert.equal(typeof body.error_description, 'string', label);
  assert.ok(body.error_description.length > 0, label);
}

const assertInvalidGrant = (res: LightMyRequestResponse, label: string) =>
  assertOAuthError(res, 'invalid_grant', 400, label);

for (const provider of testProviders()) {
  describe(`refresh-token attacks on /oauth/token and /oauth/revoke (${provider})`, () => {
    const clock = new TestClock();
    let t: TestApp;
    before(async () => {
      t = await startTestApp(provider, { now: clock.now, env: { REFRESH_REUSE_GRACE: '10' } });
    });
    after(() => t.close());

    const refresh = (refreshToken: string, encoding: 'form' | 'json' = 'form') =>
      encoding === 'form'
        ? t.app.inject({
            method: 'POST',
            url: '/oauth/token',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            payload: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken }).toString(),
          })
        : t.app.inject({
            method: 'POST',
            url: '/oauth/token',
            payload: { grant_type: 'refresh_token', refresh_token: refreshToken },
          });
    const revoke = (token: string) =>
      t.app.inject({
        method: 'POST',
        url: '/oauth/revoke',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ token }).toString(),
      });
    const me = (accessToken: string) =>
      t.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${accessToken}` } });
    const rotate = async (refreshToken: string) => {
      const res = await refresh(refreshToken);
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.headers['cache-control'], 'no-store');
      return res.json() as { access_token: string; refresh_token: string };
    };
    const login = async (username: string, password: string) => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'password', username, password },
      });
      assert.equal(res.statusCode, 200, res.body);
      return res.json() as { access_token: string; refresh_token: string };
    };

    it('control: within the grace window the rotated token gets the same successor, nothing is revoked', async () => {
      const user = await registerAndLogin(t.app);
      const first = await rotate(user.refresh_token);
      clock.advance(9);
      const again = await rotate(user.refresh_token);
      assert.equal(again.refresh_token, first.refresh_token);
      assert.equal((await me(user.access_token)).statusCode, 200);
      assert.equal((await me(first.access_token)).statusCode, 200);
      await rotate(first.refresh_token);
    });

    it('reuse after the grace window kills the whole family: the successor and every access token', async () => {
      const user = await registerAndLogin(t.app);
      const stolen = user.refresh_token;
      const legit1 = await rotate(stolen);
      clock.advance(11); // past REFRESH_REUSE_GRACE
      const legit2 = await rotate(legit1.refresh_token);
      assert.equal((await me(legit2.access_token)).statusCode, 200);

      // The attacker replays the stolen (rotated) token.
      const replay = await refresh(stolen);
      assertInvalidGrant(replay, 'replay after the grace window');
      assert.match(replay.json().error_description, /already used/);

      // Every member of the family is dead, the current one included.
      for (const [label, token] of [
        ['original', stolen],
        ['first successor', legit1.refresh_token],
        ['current successor', legit2.refresh_token],
      ] as const) {
        assertInvalidGrant(await refresh(token), label);
      }
      for (const accessToken of [user.access_token, legit1.access_token, legit2.access_token]) {
        const res = await me(accessToken);
        assert.equal(res.statusCode, 401);
        assert.match(String(res.headers['www-authenticate']), /error="invalid_token"/);
      }
      // The user's other sessions are not touched by one family's death.
      const other = await login(user.username, user.password);
      assert.equal((await me(other.access_token)).statusCode, 200);
      await rotate(other.refresh_token);
    });

    it('a token two rotations old is a replay even inside the grace window', async () => {
      const user = await registerAndLogin(t.app);
      const b = await rotate(user.refresh_token);
      const c = await rotate(b.refresh_token);
      assertInvalidGrant(await refresh(user.refresh_token), 'two rotations old');
      assertInvalidGrant(await refresh(c.refresh_token), 'current token after the replay');
      assert.equal((await me(c.access_token)).statusCode, 401);
    });

    it('the attacker refreshing first does not help: the victim’s replay kills the attacker’s chain too', async () => {
      const user = await registerAndLogin(t.app);
      const attacker = await rotate(user.refresh_token); // the stolen token, used first
      clock.advance(11);
      assertInvalidGrant(await refresh(user.refresh_token), 'the victim presents the old token');
      assertInvalidGrant(await refresh(attacker.refresh_token), "the attacker's successor");
      assert.equal((await me(attacker.access_token)).statusCode, 401);
    });

    it('after logout (/oauth/revoke) neither the current nor an older token works, over form or JSON', async () => {
      const user = await registerAndLogin(t.app);
      const next = await rotate(user.refresh_token);
      const res = await revoke(next.refresh_token);
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['cache-control'], 'no-store');
      assert.deepEqual(res.json(), {});
      for (const token of [next.refresh_token, user.refresh_token]) {
        assertInvalidGrant(await refresh(token, 'form'), 'after logout (form)');
        assertInvalidGrant(await refresh(token, 'json'), 'after logout (json)');
      }
      clock.advance(3600);
      assertInvalidGrant(await refresh(next.refresh_token), 'an hour after logout');
      assert.equal((await me(next.access_token)).statusCode, 401);
      // Revoking again, or revoking a dead token, still answers 200 (RFC 7009 §2.2).
      assert.equal((await revoke(next.refresh_token)).statusCode, 200);
      assert.equal((await revoke(user.refresh_token)).statusCode, 200);
    });

    it('after DELETE /v1/sessions/:id, DELETE /v1/sessions and a password change the refresh tokens are dead', async () => {
      const user = await registerAndLogin(t.app);
      const second = await login(user.username, user.password);
      const third = await login(user.username, user.password);
      const auth = { authorization: `Bearer ${user.access_token}` };

      const one = await t.app.inject({
        method: 'DELETE',
        url: `/v1/sessions/${decodeJwt(second.access_token).sid}`,
        headers: auth,
      });
      assert.equal(one.statusCode, 204);
      assertInvalidGrant(await refresh(second.refresh_token), 'session ended by id');

      const changed = await t.app.inject({
        method: 'POST',
        url: '/v1/me/password',
        headers: auth,
        payload: { currentPassword: user.password, newPassword: 'a brand new long passphrase' },
      });
      assert.equal(changed.statusCode, 204, changed.body);
      assertInvalidGrant(await refresh(third.refresh_token), 'other session after a password change');
      const kept = await rotate(user.refresh_token);

      const all = await t.app.inject({
        method: 'DELETE',
        url: '/v1/sessions',
        headers: { authorization: `Bearer ${kept.access_token}` },
      });
      assert.equal(all.statusCode, 204);
      assertInvalidGrant(await refresh(kept.refresh_token), 'after logout everywhere');
    });

    it("another user's token opens only that user's session; tokens are bound to their session", async () => {
      const alice = await registerAndLogin(t.app);
      const mallory = await registerAndLogin(t.app);
      const aliceSid = String(decodeJwt(alice.access_token).sid);

      // Mallory's own token gives Mallory's session and identity, never Alice's.
      const own = await rotate(mallory.refresh_token);
      assert.equal(decodeJwt(own.access_token).sub, mallory.userId);
      assert.notEqual(decodeJwt(own.access_token).sid, aliceSid);

      // Alice's session id (it is in every one of her access tokens) with Mallory's generation and MAC.
      const spliced = splice(alice.refresh_token, own.refresh_token);
      assert.equal(decode(spliced).length, decode(alice.refresh_token).length);
      assertInvalidGrant(await refresh(spliced), "alice's sid with mallory's MAC");
      // Mallory's session id with Alice's MAC.
      assertInvalidGrant(await refresh(splice(own.refresh_token, alice.refresh_token)), "mallory's sid, alice's MAC");
      // Alice's sid with a guessed generation and random or zero MACs.
      for (const generation of [0, 1, 2, 0xffffffff]) {
        const sidAndGeneration = decode(withGeneration(alice.refresh_token, generation)).subarray(
          0,
          SID_BYTES + GENERATION_BYTES,
        );
        for (const mac of [randomBytes(32), Buffer.alloc(32)]) {
          assertInvalidGrant(await refresh(encode(Buffer.concat([sidAndGeneration, mac]))), `forged gen ${generation}`);
        }
      }
      // Alice's own token with her MAC but another generation.
      assertInvalidGrant(await refresh(withGeneration(alice.refresh_token, 1)), 'generation bumped');

      // Forged revocations are ignored (200, as RFC 7009 requires, but nothing ends).
      assert.equal((await revoke(spliced)).statusCode, 200);
      assert.equal((await revoke(withGeneration(alice.refresh_token, 1))).statusCode, 200);

      // None of that rotated, revoked or otherwise harmed Alice's session.
      assert.equal((await me(alice.access_token)).statusCode, 200);
      const aliceNext = await rotate(alice.refresh_token);
      assert.equal(decodeJwt(aliceNext.access_token).sub, alice.userId);
      assert.equal(decodeJwt(aliceNext.access_token).sid, aliceSid);
      // And Mallory revoking her own session does not end Alice's.
      assert.equal((await revoke(own.refresh_token)).statusCode, 200);
      await rotate(aliceNext.refresh_token);
    });

    it('access tokens and refresh tokens cannot stand in for each other', async () => {
      const user = await registerAndLogin(t.app);
      assertInvalidGrant(await refresh(user.access_token), 'access token as refresh token');
      const res = await me(user.refresh_token);
      assert.equal(res.statusCode, 401);
      assert.match(String(res.headers['www-authenticate']), /error="invalid_token"/);
      // Neither stood in for the other above: the session still rotates.
      const next = await rotate(user.refresh_token);
      // Revoking with the access token is a logout of its own session (RFC 7009 §2.1), nothing more.
      assert.equal((await revoke(user.access_token)).statusCode, 200);
      assertInvalidGrant(await refresh(next.refresh_token), 'a token of the session the access token ended');
    });

    it('truncated, padded, case-flipped and bit-flipped tokens get invalid_grant and harm nothing', async () => {
      const user = await registerAndLogin(t.app);
      const good = user.refresh_token;
      const bytes = decode(good);
      const variants: Array<[string, string]> = [
        ['empty-ish', 'A'],
        ['one char short', good.slice(0, -1)],
        ['half', good.slice(0, Math.floor(good.length / 2))],
        ['session id only', encode(bytes.subarray(0, SID_BYTES))],
        ['no MAC', encode(bytes.subarray(0, SID_BYTES + GENERATION_BYTES))],
        ['one byte short', encode(bytes.subarray(0, -1))],
        ['first char dropped', good.slice(1)],
        ['extra char', `${good}A`],
        ['extra chars', `${good}AAAA`],
        ['extra byte', encode(Buffer.concat([bytes, Buffer.from([0])]))],
        ['padded =', `${good}=`],
        ['padded ==', `${good}==`],
        ['padded ===', `${good}===`],
        ['leading space', ` ${good}`],
        ['trailing space', `${good} `],
        ['trailing newline', `${good}\n`],
        ['trailing NUL', `${good}\u0000`],
        ['standard base64', bytes.toString('base64')],
        ['doubled', `${good}${good}`],
        ['swapcase', [...good].map((c) => (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase())).join('')],
        ['upper', good.toUpperCase()],
        ['lower', good.toLowerCase()],
        ['fullwidth', [...good].map((c) => String.fromCodePoint(c.codePointAt(0)! + 0xfee0)).join('')],
      ];
      // Non-canonical encodings of the same bytes: the last char carries 2 unused bits.
      const last = good.at(-1)!;
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const index = alphabet.indexOf(last);
      for (let low = 0; low < 4; low++) {
        const candidate = alphabet[(index & ~3) | low]!;
        if (candidate !== last)
          variants.push([`non-canonical last char ${candidate}`, `${good.slice(0, -1)}${candidate}`]);
      }
      // Flip the case of one letter at each position.
      for (let i = 0; i < good.length; i++) {
        const c = good[i]!;
        const flipped = c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase();
        if (flipped !== c) variants.push([`case flip at ${i}`, `${good.slice(0, i)}${flipped}${good.slice(i + 1)}`]);
      }
      // Flip every single bit of the decoded token: session id, generation and MAC alike.
      for (let bit = 0; bit < bytes.length * 8; bit++) {
        const copy = Buffer.from(bytes);
        copy[bit >> 3]! ^= 1 << (bit & 7);
        variants.push([`bit ${bit} flipped`, encode(copy)]);
      }

      for (const [label, token] of variants) {
        assert.notEqual(token, good, label);
        assertInvalidGrant(await refresh(token, label.length % 2 === 0 ? 'form' : 'json'), label);
      }
      // Revocation with every variant: 200 and nothing ends.
      for (const [label, token] of variants.slice(0, 40)) {
        const res = await revoke(token);
        assert.equal(res.statusCode, 200, `revoke ${label}: ${res.body}`);
      }
      // None of that harmed the real session: the genuine token still rotates once, normally.
      assert.equal((await me(user.access_token)).statusCode, 200);
      await rotate(good);
    });

    it('very long and odd tokens get 400, never 500', async () => {
      const user = await registerAndLogin(t.app);
      const long: Array<[string, string]> = [
        ['10 KB of A', 'A'.repeat(10 * 1024)],
        ['10 KB of the real token', user.refresh_token.repeat(Math.ceil((10 * 1024) / user.refresh_token.length))],
        ['10 KB of random base64url', randomBytes(7680).toString('base64url')],
        ['10 KB of punctuation', '%$#@!'.repeat(2048)],
        ['10 KB of emoji', '😀'.repeat(2560)],
        ['50 KB', 'B'.repeat(50 * 1024)],
        ['a JWT-looking string', `${user.access_token}.${user.access_token}`],
        ['SQL', "' OR 1=1 --"],
        ['NULs', '\u0000'.repeat(70)],
        ['lone surrogate', '\ud800'.repeat(70)],
      ];
      for (const [label, token] of long) {
        assertInvalidGrant(await refresh(token, 'form'), `${label} (form)`);
        assertInvalidGrant(await refresh(token, 'json'), `${label} (json)`);
        const res = await revoke(token);
        assert.ok(res.statusCode === 200 || res.statusCode === 400, `revoke ${label}: ${res.statusCode}`);
        if (res.statusCode === 400) assertOAuthError(res, 'invalid_request', 400, `revoke ${label}`);
      }
      // Over the body limit: 413 in the OAuth error shape, still never 500.
      const huge = await refresh('C'.repeat(100 * 1024));
      assert.equal(huge.statusCode, 413);
      assert.equal(typeof huge.json().error, 'string');
      assert.equal(huge.headers['cache-control'], 'no-store');
      // Non-string refresh tokens in JSON.
      for (const value of [12345, null, true, ['a'], { token: user.refresh_token }]) {
        const res = await t.app.inject({
          method: 'POST',
          url: '/oauth/token',
          payload: { grant_type: 'refresh_token', refresh_token: value },
        });
        assertOAuthError(res, 'invalid_request', 400, `refresh_token ${JSON.stringify(value)}`);
      }
      await rotate(user.refresh_token);
    });
  });

  describe(`a refresh token from another tessera instance is refused (${provider})`, () => {
    let a: TestApp;
    let b: TestApp;
    before(async () => {
      a = await startTestApp(provider);
      b = await startTestApp(provider, {
        env: { KEY_ENCRYPTION_SECRET: 'a-different-instance-key-encryption-secret-0123456789' },
      });
    });
    after(async () => {
      await a.close();
      await b.close();
    });

    it('answers invalid_grant both ways, and harms neither instance', async () => {
      // The same username and password on both instances.
      const onA = await registerAndLogin(a.app, 'same-name', 'the same long password');
      const onB = await registerAndLogin(b.app, 'same-name', 'the same long password');
      const post = (app: TestApp, token: string) =>
        app.app.inject({
          method: 'POST',
          url: '/oauth/token',
          payload: { grant_type: 'refresh_token', refresh_token: token },
        });
      assertInvalidGrant(await post(a, onB.refresh_token), "B's token on A");
      assertInvalidGrant(await post(b, onA.refresh_token), "A's token on B");
      // A's session id with B's MAC (as if the same session id existed on both).
      assertInvalidGrant(await post(a, splice(onA.refresh_token, onB.refresh_token)), "A's sid, B's MAC on A");
      // Revoking on the wrong instance ends nothing.
      const revoke = await b.app.inject({
        method: 'POST',
        url: '/oauth/revoke',
        payload: { token: onA.refresh_token },
      });
      assert.equal(revoke.statusCode, 200);
      // Access tokens are not interchangeable either: different keys.
      assert.equal(
        (await a.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${onB.access_token}` } })).statusCode,
        401,
      );
      // Both genuine sessions still work where they belong.
      assert.equal((await post(a, onA.refresh_token)).statusCode, 200);
      assert.equal((await post(b, onB.refresh_token)).statusCode, 200);
    });
  });
}
