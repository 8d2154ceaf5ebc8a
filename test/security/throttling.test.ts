import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { startTestApp, type TestApp, TestClock } from '../helpers/app.js';

const PASSWORD = 'a perfectly fine passphrase';

function login(app: FastifyInstance, username: string, password: string, ip = '203.0.113.7') {
  return app.inject({
    method: 'POST',
    url: '/oauth/token',
    remoteAddress: ip,
    payload: { grant_type: 'password', username, password },
  });
}

describe('per-account login throttling', () => {
  const clock = new TestClock();
  let t: TestApp;
  before(async () => {
    t = await startTestApp('sqlite', {
      now: clock.now,
      env: { LOGIN_FREE_ATTEMPTS: '3', LOGIN_FREE_ATTEMPTS_ACCOUNT: '6', LOGIN_MAX_DELAY: '60' },
    });
    for (const username of ['victim', 'other']) {
      const res = await t.app.inject({ method: 'POST', url: '/v1/users', payload: { username, password: PASSWORD } });
      assert.equal(res.statusCode, 201);
    }
  });
  after(() => t.close());

  it('slows repeated failures with doubling delays, answered 429 with Retry-After, the same for unknown users', async () => {
    for (const username of ['victim', 'nobody-at-all']) {
      // Three free failures…
      for (let attempt = 0; attempt < 3; attempt++) {
        assert.equal((await login(t.app, username, 'wrong password!')).json().error, 'invalid_grant');
      }
      // …then the next attempt must wait: even the right password is not checked.
      const throttled = await login(t.app, username, PASSWORD);
      assert.equal(throttled.statusCode, 429);
      assert.equal(throttled.json().error, 'temporarily_unavailable');
      assert.equal(throttled.headers['retry-after'], '1');
      assert.equal(throttled.headers['cache-control'], 'no-store');
    }
    // Doubling: each further failure doubles the wait, 2 s, then 4 s.
    clock.advance(1);
    assert.equal((await login(t.app, 'victim', 'wrong password!')).statusCode, 400);
    assert.equal((await login(t.app, 'victim', PASSWORD)).headers['retry-after'], '2');
    clock.advance(2);
    assert.equal((await login(t.app, 'victim', 'wrong password!')).statusCode, 400);
    assert.equal((await login(t.app, 'victim', PASSWORD)).headers['retry-after'], '4');
  });

  it('lets the right password in once the wait is over, and a success resets the count', async () => {
    clock.advance(60);
    assert.equal((await login(t.app, 'victim', PASSWORD)).statusCode, 200);
    for (let attempt = 0; attempt < 3; attempt++) {
      assert.equal((await login(t.app, 'victim', 'wrong password!')).statusCode, 400);
    }
    assert.equal((await login(t.app, 'victim', PASSWORD)).statusCode, 429);
    clock.advance(1);
    assert.equal((await login(t.app, 'victim', PASSWORD)).statusCode, 200);
  });

  it('an attack spread over many addresses cannot lock the owner out of their usual address', async () => {
    // The owner logged in from 203.0.113.7 above. An attacker now guesses from many addresses.
    for (let i = 0; i < 12; i++) {
      await login(t.app, 'victim', `guess number ${i}`, `198.51.100.${i + 1}`);
    }
    // A fresh address is slowed by the account-wide counter…
    const fresh = await login(t.app, 'victim', PASSWORD, '192.0.2.200');
    assert.equal(fresh.statusCode, 429);
    // …but the owner's known address still gets in at once.
    const owner = await login(t.app, 'victim', PASSWORD, '203.0.113.7');
    assert.equal(owner.statusCode, 200);
    // And other accounts are unaffected.
    assert.equal((await login(t.app, 'other', PASSWORD, '192.0.2.200')).statusCode, 200);
  });

  it('guesses sent all at once get no more password checks than guesses sent one after another', async () => {
    clock.advance(3600);
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/users',
      payload: { username: 'burst', password: PASSWORD },
    });
    assert.equal(res.statusCode, 201);
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => login(t.app, 'burst', `parallel guess ${i}`, '198.51.100.77')),
    );
    const statuses = answers.map((answer) => answer.statusCode);
    // LOGIN_FREE_ATTEMPTS=3: three checked and wrong, every other one refused before hashing.
    assert.equal(statuses.filter((status) => status === 400).length, 3, statuses.join(','));
    assert.equal(statuses.filter((status) => status === 429).length, 17, statuses.join(','));
    // Logins with the right password sent all at once, more than the free attempts, all get in.
    const logins = await Promise.all(Array.from({ length: 8 }, () => login(t.app, 'other', PASSWORD, '198.51.100.78')));
    assert.deepEqual(
      logins.map((answer) => answer.statusCode),
      Array(8).fill(200),
    );
    // Refused guesses are not failures: the account counted three (of LOGIN_FREE_ATTEMPTS_ACCOUNT=6),
    // so another address still gets in with the right password.
    assert.equal((await login(t.app, 'burst', PASSWORD, '203.0.113.9')).statusCode, 200);
  });
});

describe('per-account throttling when password checks are slow', () => {
  let t: TestApp;
  before(async () => {
    // One hash at a time, each a few hundred ms: checks outlast the throttle's wait for attempts in flight.
    t = await startTestApp('sqlite', {
      env: { LOGIN_FREE_ATTEMPTS: '3', HASH_CONCURRENCY: '1', ARGON2_MEMORY_COST: '65536', ARGON2_TIME_COST: '4' },
    });
    const res = await t.app.inject({
      method: 'POST',
      url: '/v1/users',
      payload: { username: 'slow', password: PASSWORD },
    });
    assert.equal(res.statusCode, 201);
  });
  after(() => t.close());

  it('parallel guesses still get no more checks than the free attempts: the rest are refused, 429 or 503', async () => {
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => login(t.app, 'slow', `slow guess ${i}`)));
    const statuses = answers.map((answer) => answer.statusCode);
    assert.equal(statuses.filter((status) => status === 400).length, 3, statuses.join(','));
    for (const answer of answers.filter((a) => a.statusCode !== 400)) {
      assert.ok([429, 503].includes(answer.statusCode), statuses.join(','));
      assert.equal(answer.json().error, 'temporarily_unavailable');
      assert.ok(Number(answer.headers['retry-after']) >= 1);
    }
  });
});

describe('per-IP rate limits', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp('sqlite', { env: { RATE_LIMIT_TOKEN: '3', RATE_LIMIT_REGISTER: '2' } });
  });
  after(() => t.close());

  it('answers 429 with Retry-After in the OAuth shape on the token endpoint, per client address', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      statuses.push((await login(t.app, 'someone', 'wrong password!', '203.0.113.50')).statusCode);
    }
    assert.deepEqual(statuses, [400, 400, 400, 429]);
    const limited = await login(t.app, 'someone', 'wrong password!', '203.0.113.50');
    assert.equal(limited.json().error, 'temporarily_unavailable');
    assert.ok(Number(limited.headers['retry-after']) > 0);
    // Another address has its own budget.
    assert.equal((await login(t.app, 'someone', 'wrong password!', '203.0.113.51')).statusCode, 400);
  });

  it('answers 429 problem details on registration', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await t.app.inject({
        method: 'POST',
        url: '/v1/users',
        remoteAddress: '203.0.113.60',
        payload: { username: `rate-${i}`, password: PASSWORD },
      });
      statuses.push(res.statusCode);
      if (res.statusCode === 429) {
        assert.equal(res.json().code, 'too_many_requests');
        assert.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8');
      }
    }
    assert.deepEqual(statuses, [201, 201, 429]);
  });
});

describe('shared counters in Redis across two instances', () => {
  const env = { REDIS_URL: 'redis://127.0.0.1:6379', RATE_LIMIT_TOKEN: '4', LOGIN_FREE_ATTEMPTS: '2' };
  let a: TestApp;
  let b: TestApp;
  before(async () => {
    const redis = new Redis('redis://127.0.0.1:6379');
    // Fresh counters: this test owns the tessera: key space of the local Redis.
    const keys = await redis.keys('tessera:*');
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
    a = await startTestApp('postgres', { env });
    b = await startTestApp('postgres', { env, databaseUrl: a.databaseUrl });
    const res = await a.app.inject({
      method: 'POST',
      url: '/v1/users',
      payload: { username: 'shared', password: PASSWORD },
    });
    assert.equal(res.statusCode, 201);
  });
  after(async () => {
    await b.app.close();
    await a.close();
  });

  it('failures on one instance slow logins on the other, and the rate limit is shared', async () => {
    const ip = '203.0.113.80';
    assert.equal((await login(a.app, 'shared', 'wrong password!', ip)).statusCode, 400);
    assert.equal((await login(b.app, 'shared', 'wrong password!', ip)).statusCode, 400);
    const throttled = await login(a.app, 'shared', PASSWORD, ip);
    assert.equal(throttled.statusCode, 429);
    // Four requests from this address so far in the window: the fifth hits the shared limit on b.
    assert.equal((await login(b.app, 'shared', PASSWORD, ip)).statusCode, 429);
    const limited = await login(b.app, 'shared', PASSWORD, ip);
    assert.equal(limited.statusCode, 429);
    assert.match(limited.json().error_description, /rate limit/);
  });
});
