// Clocks disagree: a downstream verifier a minute ahead or behind tessera must
// still accept fresh tokens within the documented leeway (CLOCK_LEEWAY, 60 s),
// and tessera must never stamp a token in the future of its own clock.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLocalJWKSet, decodeJwt, type JSONWebKeySet, type JWTVerifyGetKey, jwtVerify } from 'jose';
import { registerAndLogin, startTestApp, type TestApp, TestClock } from '../helpers/app.js';
import { testProviders } from '../helpers/databases.js';

const provider = testProviders()[0] ?? 'sqlite';

describe(`clock skew between tessera and verifiers (${provider})`, () => {
  // Starts at a time with a fraction of a second, the case where rounding matters.
  const clock = new TestClock(Math.floor(Date.now() / 1000) * 1000 + 999);
  let t: TestApp;
  let jwks: JWTVerifyGetKey;
  before(async () => {
    t = await startTestApp(provider, { now: clock.now });
    jwks = createLocalJWKSet((await t.app.inject({ url: '/.well-known/jwks.json' })).json() as JSONWebKeySet);
  });
  after(() => t?.close());

  /** A strict downstream verifier (README "Verifying tessera tokens") whose clock reads `at`. */
  const verifyAt = (token: string, at: number, clockTolerance = t.config.clockLeeway) =>
    jwtVerify(token, jwks, {
      issuer: t.config.issuer,
      audience: t.config.audience,
      algorithms: ['RS256'],
      typ: 'at+jwt',
      requiredClaims: ['sub', 'iat', 'jti', 'sid'],
      // Also refuses an `iat` in its future beyond the tolerance.
      maxTokenAge: t.config.accessTokenTtl,
      clockTolerance,
      currentDate: new Date(at),
    });

  it('a verifier up to CLOCK_LEEWAY ahead or behind accepts fresh tokens and tokens about to expire', async () => {
    assert.equal(t.config.clockLeeway, 60, 'the documented leeway');
    const user = await registerAndLogin(t.app);
    const issuedAt = clock.now();
    const { exp } = decodeJwt(user.access_token);
    const leeway = t.config.clockLeeway * 1000;
    for (const skew of [-leeway, -leeway / 2, 0, leeway / 2, leeway]) {
      // Just issued, on the issuer's clock.
      await verifyAt(user.access_token, issuedAt + skew);
      // One second before it expires, on the issuer's clock.
      await verifyAt(user.access_token, exp! * 1000 - 1000 + skew);
    }
    // The leeway is what makes the difference, and it is not unlimited.
    await assert.rejects(verifyAt(user.access_token, exp! * 1000 - 1000 + leeway, 0), { code: 'ERR_JWT_EXPIRED' });
    await assert.rejects(verifyAt(user.access_token, exp! * 1000 + leeway), { code: 'ERR_JWT_EXPIRED' });
    await assert.rejects(verifyAt(user.access_token, issuedAt - leeway - 1000), {
      code: 'ERR_JWT_CLAIM_VALIDATION_FAILED',
    });
  });

  it('never issues an iat ahead of its own clock, nor an exp beyond iat + ACCESS_TOKEN_TTL', async () => {
    const ttl = t.config.accessTokenTtl;
    const user = await registerAndLogin(t.app);
    let refreshToken = user.refresh_token;
    const problems: string[] = [];
    const check = (label: string, at: number, body: { access_token: string; expires_in: number }) => {
      const { iat, exp } = decodeJwt(body.access_token);
      if (typeof iat !== 'number' || typeof exp !== 'number') return problems.push(`${label}: no iat/exp`);
      if (iat * 1000 > at) problems.push(`${label}: iat ${iat} is after the clock ${at}`);
      if (iat * 1000 <= at - 1000) problems.push(`${label}: iat ${iat} is more than a second before the clock ${at}`);
      if (exp - iat !== ttl) problems.push(`${label}: exp - iat = ${exp - iat}, not ${ttl}`);
      if (exp * 1000 > at + ttl * 1000) problems.push(`${label}: exp ${exp} beyond clock + TTL`);
      if (body.expires_in !== ttl) problems.push(`${label}: expires_in ${body.expires_in}`);
      return 0;
    };
    for (let i = 0; i < 150; i++) {
      // Steps with every kind of millisecond remainder, .999 included.
      clock.ms += 1 + ((i * 337) % 1000);
      const at = clock.now();
      const refreshed = await t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'refresh_token', refresh_token: refreshToken },
      });
      assert.equal(refreshed.statusCode, 200, refreshed.body);
      refreshToken = refreshed.json().refresh_token;
      check(`refresh #${i}`, at, refreshed.json());
      if (i % 10 === 0) {
        const login = await t.app.inject({
          method: 'POST',
          url: '/oauth/token',
          payload: { grant_type: 'password', username: user.username, password: user.password },
        });
        assert.equal(login.statusCode, 200, login.body);
        check(`login #${i}`, at, login.json());
      }
    }
    assert.deepEqual(problems, []);
  });
});
