import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { startTestApp, type TestApp } from '../helpers/app.js';

const ORIGIN = 'https://app.example.test';
const PASSWORD = 'a browser-held passphrase';

/** The refresh cookie a response sets, with its attributes. */
function refreshCookie(res: LightMyRequestResponse) {
  const cookie = res.cookies.find((entry) => entry.name === 'tessera_refresh');
  assert.ok(cookie, 'no refresh cookie was set');
  return cookie;
}

describe('browser cookie mode for refresh tokens', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp('sqlite', { env: { REFRESH_TOKEN_COOKIE: 'true', ALLOWED_ORIGINS: ORIGIN } });
    await t.app.inject({ method: 'POST', url: '/v1/users', payload: { username: 'browser', password: PASSWORD } });
  });
  after(() => t.close());

  const token = (payload: Record<string, string>, headers: Record<string, string> = {}) =>
    t.app.inject({ method: 'POST', url: '/oauth/token', headers, payload });

  it('keeps the refresh token out of the page: HttpOnly, Secure, SameSite=Strict cookie on /oauth only', async () => {
    const login = await token({ grant_type: 'password', username: 'browser', password: PASSWORD }, { origin: ORIGIN });
    assert.equal(login.statusCode, 200);
    assert.deepEqual(Object.keys(login.json()).sort(), ['access_token', 'expires_in', 'token_type']);
    const cookie = refreshCookie(login);
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.secure, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.equal(cookie.path, '/oauth');
    assert.ok(Number(cookie.maxAge) > 0);
  });

  it('refreshes from the cookie for a trusted origin, rotating it; two tabs at once land on one successor', async () => {
    const login = await token({ grant_type: 'password', username: 'browser', password: PASSWORD }, { origin: ORIGIN });
    const first = refreshCookie(login).value;
    const refresh = () =>
      token({ grant_type: 'refresh_token' }, { origin: ORIGIN, cookie: `tessera_refresh=${first}` });
    const [a, b] = await Promise.all([refresh(), refresh()]);
    assert.equal(a.statusCode, 200, a.body);
    assert.equal(b.statusCode, 200, b.body);
    assert.equal(a.json().refresh_token, undefined);
    assert.notEqual(refreshCookie(a).value, first);
    assert.equal(refreshCookie(a).value, refreshCookie(b).value);
  });

  it('refuses the cookie from another origin or without an Origin (CSRF)', async () => {
    const login = await token({ grant_type: 'password', username: 'browser', password: PASSWORD }, { origin: ORIGIN });
    const cookie = `tessera_refresh=${refreshCookie(login).value}`;
    for (const headers of [{ origin: 'https://evil.example', cookie }, { cookie }] as Record<string, string>[]) {
      const res = await token({ grant_type: 'refresh_token' }, headers);
      assert.equal(res.statusCode, 403);
      assert.equal(res.json().error, 'invalid_request');
    }
  });

  it('issues no tokens to a page of another origin, so it cannot plant its session in the browser (login CSRF)', async () => {
    const res = await token(
      { grant_type: 'password', username: 'browser', password: PASSWORD },
      { origin: 'https://evil.example' },
    );
    assert.equal(res.statusCode, 403);
    assert.equal(res.json().error, 'invalid_request');
    assert.equal(res.headers['set-cookie'], undefined);
  });

  it('keeps a good cookie when some other token fails to refresh or is revoked', async () => {
    const login = await token({ grant_type: 'password', username: 'browser', password: PASSWORD }, { origin: ORIGIN });
    const cookie = `tessera_refresh=${refreshCookie(login).value}`;
    const bad = await token({ grant_type: 'refresh_token', refresh_token: 'garbage' }, { origin: ORIGIN, cookie });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.headers['set-cookie'], undefined);
    const revoked = await t.app.inject({
      method: 'POST',
      url: '/oauth/revoke',
      headers: { origin: ORIGIN, cookie },
      payload: { token: 'garbage' },
    });
    assert.equal(revoked.statusCode, 200);
    assert.equal(revoked.headers['set-cookie'], undefined);
    // The page's session is alive and its cookie still refreshes it.
    const refreshed = await token({ grant_type: 'refresh_token' }, { origin: ORIGIN, cookie });
    assert.equal(refreshed.statusCode, 200, refreshed.body);
    // Revoking the cookie's own token, named in the body, is a logout: the cookie goes.
    const current = refreshCookie(refreshed).value;
    const logout = await t.app.inject({
      method: 'POST',
      url: '/oauth/revoke',
      headers: { origin: ORIGIN, cookie: `tessera_refresh=${current}` },
      payload: { token: current },
    });
    assert.equal(refreshCookie(logout).value, '');
    // And a dead cookie is dropped when it fails to refresh.
    const dead = await token({ grant_type: 'refresh_token' }, { origin: ORIGIN, cookie: `tessera_refresh=${current}` });
    assert.equal(dead.statusCode, 400);
    assert.equal(refreshCookie(dead).value, '');
  });

  it('logs out from the cookie: the session ends and the cookie is cleared', async () => {
    const login = await token({ grant_type: 'password', username: 'browser', password: PASSWORD }, { origin: ORIGIN });
    const cookie = `tessera_refresh=${refreshCookie(login).value}`;
    const logout = await t.app.inject({
      method: 'POST',
      url: '/oauth/revoke',
      headers: { origin: ORIGIN, cookie },
      payload: {},
    });
    assert.equal(logout.statusCode, 200);
    const cleared = refreshCookie(logout);
    assert.equal(cleared.value, '');
    assert.ok(cleared.expires && cleared.expires.getTime() <= Date.now());
    const after = await token({ grant_type: 'refresh_token' }, { origin: ORIGIN, cookie });
    assert.equal(after.statusCode, 400);
    assert.equal(after.json().error, 'invalid_grant');
  });

  it('leaves non-browser clients (no Origin header) on tokens in the body', async () => {
    const login = await token({ grant_type: 'password', username: 'browser', password: PASSWORD });
    assert.equal(typeof login.json().refresh_token, 'string');
    assert.equal(
      login.cookies.find((entry) => entry.name === 'tessera_refresh'),
      undefined,
    );
  });
});

describe('without cookie mode (the default)', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp('sqlite', { env: { ALLOWED_ORIGINS: ORIGIN } });
    await t.app.inject({ method: 'POST', url: '/v1/users', payload: { username: 'browser', password: PASSWORD } });
  });
  after(() => t.close());

  it('answers pages with tokens in the body, sets no cookie and ignores one sent', async () => {
    const login = await t.app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: { origin: ORIGIN },
      payload: { grant_type: 'password', username: 'browser', password: PASSWORD },
    });
    assert.equal(login.statusCode, 200);
    assert.equal(typeof login.json().refresh_token, 'string');
    assert.equal(login.headers['set-cookie'], undefined);
    const fromCookie = await t.app.inject({
      method: 'POST',
      url: '/oauth/token',
      headers: { origin: ORIGIN, cookie: `tessera_refresh=${login.json().refresh_token}` },
      payload: { grant_type: 'refresh_token' },
    });
    assert.equal(fromCookie.statusCode, 400);
    assert.equal(fromCookie.json().error, 'invalid_request');
    const logout = await t.app.inject({
      method: 'POST',
      url: '/oauth/revoke',
      headers: { origin: ORIGIN, cookie: `tessera_refresh=${login.json().refresh_token}` },
      payload: {},
    });
    assert.equal(logout.statusCode, 400);
    assert.equal(logout.headers['set-cookie'], undefined);
  });
});
