import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { registerAndLogin, startTestApp, type TestApp } from '../helpers/app.js';

/** The value of one sample line of the Prometheus text format, or undefined. */
function sample(text: string, prefix: string): number | undefined {
  const line = text.split('\n').find((candidate) => candidate.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('GET /metrics', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp('sqlite');
  });
  after(() => t.close());

  it('reports requests, login and refresh outcomes, reuse, hashing and keys in Prometheus format', async () => {
    const user = await registerAndLogin(t.app);
    await t.app.inject({
      method: 'POST',
      url: '/oauth/token',
      payload: { grant_type: 'password', username: user.username, password: 'not the password' },
    });
    const refresh = () =>
      t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'refresh_token', refresh_token: user.refresh_token },
      });
    assert.equal((await refresh()).statusCode, 200);
    await t.app.inject({ url: '/.well-known/jwks.json' });

    const res = await t.app.inject({ url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    const text = res.body;
    assert.equal(sample(text, 'tessera_logins_total{outcome="success"'), 1);
    assert.equal(sample(text, 'tessera_logins_total{outcome="bad_credentials"'), 1);
    assert.equal(sample(text, 'tessera_refreshes_total{outcome="success"'), 1);
    assert.equal(sample(text, 'tessera_access_tokens_issued_total'), 2);
    assert.equal(sample(text, 'tessera_audit_events_total{type="login_failed"'), 1);
    assert.ok(
      (sample(
        text,
        'tessera_http_request_duration_seconds_count{method="GET",route="/.well-known/jwks.json",status_code="200"',
      ) ?? 0) >= 1,
    );
    assert.ok((sample(text, 'tessera_password_hash_duration_seconds_count{kind="verify"') ?? 0) >= 2);
    assert.equal(sample(text, 'tessera_password_hash_queue_depth'), 0);
    assert.ok((sample(text, 'tessera_signing_key_age_seconds') ?? -1) >= 0);
    assert.ok((sample(text, 'tessera_signing_key_next_rotation_seconds') ?? 0) > 0);
    assert.ok(text.includes('tessera_process_resident_memory_bytes'));
    // Nothing secret in there.
    assert.ok(!text.includes(user.refresh_token) && !text.includes(user.password));
  });

  it('answers only loopback clients without a token', async () => {
    const remote = await t.app.inject({ url: '/metrics', remoteAddress: '203.0.113.9' });
    assert.equal(remote.statusCode, 401);
    assert.equal(remote.json().code, 'unauthorized');
  });
});

describe('GET /metrics with METRICS_TOKEN', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp('sqlite', { env: { METRICS_TOKEN: 'scrape-token-0123456789' } });
  });
  after(() => t.close());

  it('needs the bearer token, from anywhere', async () => {
    assert.equal((await t.app.inject({ url: '/metrics' })).statusCode, 401);
    const ok = await t.app.inject({
      url: '/metrics',
      remoteAddress: '203.0.113.9',
      headers: { authorization: 'Bearer scrape-token-0123456789' },
    });
    assert.equal(ok.statusCode, 200);
  });
});
