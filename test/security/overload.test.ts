import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestApp, type TestApp } from '../helpers/app.js';

describe('bounded password hashing', () => {
  let t: TestApp;
  before(async () => {
    // Real OWASP cost, one hash at a time, two waiting.
    t = await startTestApp('sqlite', {
      env: { ARGON2_MEMORY_COST: '19456', ARGON2_TIME_COST: '2', HASH_CONCURRENCY: '1', HASH_QUEUE_LIMIT: '2' },
    });
  });
  after(() => t.close());

  it('refuses work beyond the queue with 503 + Retry-After at once, while JWKS and health keep answering', async () => {
    const flood = Array.from({ length: 24 }, (_, i) =>
      t.app.inject({
        method: 'POST',
        url: '/v1/users',
        payload: { username: `flood-${i}`, password: 'a reasonably long passphrase' },
      }),
    );
    const [jwks, health] = await Promise.all([
      t.app.inject({ url: '/.well-known/jwks.json' }),
      t.app.inject({ url: '/healthz' }),
    ]);
    const results = await Promise.all(flood);
    assert.equal(jwks.statusCode, 200);
    assert.equal(health.statusCode, 200);
    const statuses = results.map((res) => res.statusCode);
    assert.ok(
      statuses.every((status) => status === 201 || status === 503),
      statuses.join(','),
    );
    const created = statuses.filter((status) => status === 201).length;
    const refused = results.filter((res) => res.statusCode === 503);
    // One running plus two waiting are served; the rest are refused.
    assert.ok(created >= 3, `created ${created}`);
    assert.ok(refused.length >= 10, `refused ${refused.length}`);
    for (const res of refused) {
      assert.equal(res.headers['retry-after'], '1');
      assert.equal(res.json().code, 'service_unavailable');
    }
    // The token endpoint answers in its own shape when saturated.
    const logins = await Promise.all(
      Array.from({ length: 12 }, () =>
        t.app.inject({
          method: 'POST',
          url: '/oauth/token',
          payload: { grant_type: 'password', username: 'flood-0', password: 'wrong but long password' },
        }),
      ),
    );
    const saturated = logins.filter((res) => res.statusCode === 503);
    assert.ok(saturated.length > 0);
    assert.equal(saturated[0]!.json().error, 'temporarily_unavailable');
    // Afterwards the service is fine.
    const later = await t.app.inject({
      method: 'POST',
      url: '/v1/users',
      payload: { username: 'after-the-flood', password: 'a reasonably long passphrase' },
    });
    assert.equal(later.statusCode, 201);
  });
});

describe('load shedding on event-loop delay', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp('sqlite', { env: { MAX_EVENT_LOOP_DELAY: '50' } });
  });
  after(() => t.close());

  it('answers 503 on API routes while the loop lags, keeps health and JWKS up, and recovers', async () => {
    // Keep the event loop lagging (as runaway synchronous work would): 100 ms
    // stalls back to back, for long enough that the sampler sees them.
    const lag = setInterval(() => {
      const until = Date.now() + 100;
      while (Date.now() < until) {
        // busy
      }
    }, 1);
    await sleep(700);
    const shed = await t.app.inject({ url: '/v1/me', headers: { authorization: 'Bearer x' } });
    // A load balancer's readiness probe learns the instance is not ready, in the documented shape.
    const ready = await t.app.inject({ url: '/readyz' });
    clearInterval(lag);
    assert.equal(ready.statusCode, 503, ready.body);
    assert.match(String(ready.headers['content-type']), /^application\/problem\+json/);
    assert.equal(ready.json().code, 'service_unavailable');
    assert.equal(shed.statusCode, 503);
    assert.equal(shed.json().code, 'service_unavailable');
    assert.ok(Number(shed.headers['retry-after']) > 0);
    assert.equal((await t.app.inject({ url: '/healthz' })).statusCode, 200);
    assert.equal((await t.app.inject({ url: '/.well-known/jwks.json' })).statusCode, 200);

    let recovered = 0;
    for (let i = 0; i < 20 && recovered !== 401; i++) {
      await sleep(200);
      recovered = (await t.app.inject({ url: '/v1/me', headers: { authorization: 'Bearer x' } })).statusCode;
    }
    assert.equal(recovered, 401);
  });
});

describe('browser-facing headers', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp('sqlite', { env: { ALLOWED_ORIGINS: 'https://app.example.test' } });
  });
  after(() => t.close());

  it('sends security headers on every response', async () => {
    for (const url of ['/healthz', '/.well-known/jwks.json', '/no-such-route']) {
      const res = await t.app.inject({ url });
      assert.equal(res.headers['x-content-type-options'], 'nosniff', url);
      assert.equal(res.headers['x-frame-options'], 'DENY', url);
      assert.equal(res.headers['referrer-policy'], 'no-referrer', url);
      assert.equal(res.headers['cross-origin-resource-policy'], 'cross-origin', url);
      assert.ok(res.headers['x-request-id'], url);
      // Headers that only mean something for HTML documents stay off API responses.
      for (const name of [
        'cross-origin-opener-policy',
        'origin-agent-cluster',
        'x-xss-protection',
        'x-download-options',
      ])
        assert.equal(res.headers[name], undefined, `${name} on ${url}`);
    }
  });

  it('sends them on errors raised before routing too (a malformed path)', async () => {
    const res = await t.app.inject({ url: '/v1/%E0%A4%A' });
    assert.equal(res.statusCode, 400);
    assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers['x-frame-options'], 'DENY');
    assert.ok(res.headers['x-request-id']);
  });

  it("sends helmet's document headers on the HTML documentation", async () => {
    const res = await t.app.inject({ url: '/docs/' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /text\/html/);
    assert.equal(res.headers['x-content-type-options'], 'nosniff');
    assert.equal(res.headers['x-frame-options'], 'SAMEORIGIN');
    assert.equal(res.headers['cross-origin-opener-policy'], 'same-origin');
    assert.equal(res.headers['origin-agent-cluster'], '?1');
  });

  it('sends HSTS when the issuer is HTTPS, and not over plain HTTP', async () => {
    assert.equal((await t.app.inject({ url: '/healthz' })).headers['strict-transport-security'], undefined);
    const https = await startTestApp('sqlite', { env: { ISSUER: 'https://auth.example.test' } });
    try {
      for (const url of ['/healthz', '/docs/']) {
        const res = await https.app.inject({ url });
        assert.match(String(res.headers['strict-transport-security']), /^max-age=31536000; includeSubDomains/, url);
      }
      // No ALLOWED_ORIGINS: no cross-origin access, preflights included.
      const preflight = await https.app.inject({
        method: 'OPTIONS',
        url: '/oauth/token',
        headers: { origin: 'https://app.example.test', 'access-control-request-method': 'POST' },
      });
      assert.equal(preflight.statusCode, 404);
      assert.equal(preflight.headers['access-control-allow-origin'], undefined);
    } finally {
      await https.close();
    }
  });

  it('allows CORS for the configured origins only', async () => {
    const preflight = (origin: string) =>
      t.app.inject({
        method: 'OPTIONS',
        url: '/oauth/token',
        headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
      });
    const allowed = await preflight('https://app.example.test');
    assert.equal(allowed.headers['access-control-allow-origin'], 'https://app.example.test');
    const refused = await preflight('https://evil.example');
    assert.equal(refused.headers['access-control-allow-origin'], undefined);
  });

  it('refuses password change and registration with a common password', async () => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/users',
      payload: { username: 'commoner', password: 'Password123' },
    });
    assert.equal(res.statusCode, 400);
    assert.equal(res.json().code, 'password_too_common');
  });
});
