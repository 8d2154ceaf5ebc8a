import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, beforeEach, describe, it } from 'node:test';
import { SecretBox } from '../../src/crypto/secret-box.js';
import { SessionRepository } from '../../src/repositories/session-repository.js';
import { SESSION_SECRET_CACHE_SIZE, SessionService } from '../../src/services/session-service.js';
import { startTestApp, TEST_KEY_ENCRYPTION_SECRET, type TestApp, TestClock } from '../helpers/app.js';
import { testProviders } from '../helpers/databases.js';

/** The real box, counting how often a sealed session secret is opened (the cost the cache saves). */
class CountingBox extends SecretBox {
  opens = 0;
  override open(...args: Parameters<SecretBox['open']>): Buffer {
    this.opens += 1;
    return super.open(...args);
  }
}

const policy = { refreshTokenTtl: 3600, sessionMaxAge: 86_400, refreshReuseGrace: 10 };
const metadata = { userAgent: 'test', ipAddress: '127.0.0.1' };

// The opened-secret cache is an optimisation: whichever instance, cache state or
// order of presentations, a refresh must decide exactly as without it.
for (const provider of testProviders()) {
  describe(`session service and its opened-secret cache (${provider})`, () => {
    let t: TestApp;
    let userId: string;
    let clock: TestClock;
    /** A SessionService over the test app's database, as another tessera instance would build it. */
    const instance = (cacheSize?: number) => {
      const box = new CountingBox(TEST_KEY_ENCRYPTION_SECRET);
      const repository = new SessionRepository(t.app.db.prisma, t.app.db.sql);
      return { box, service: new SessionService(repository, box, policy, clock.now, cacheSize) };
    };
    const refreshed = async (service: SessionService, token: string) => {
      const outcome = await service.refresh(token);
      assert.ok(outcome.ok, `refresh refused: ${outcome.ok ? '' : outcome.reason}`);
      return outcome.refreshToken;
    };
    /** Why a refresh was refused ('ok' when it was not). */
    const refusal = async (service: SessionService, token: string) => {
      const outcome = await service.refresh(token);
      return outcome.ok ? 'ok' : outcome.reason;
    };

    before(async () => {
      t = await startTestApp(provider);
      const user = await t.app.db.prisma.user.create({
        data: { id: randomUUID(), username: 'cache', usernameKey: 'cache', passwordHash: 'x', roles: '' },
      });
      userId = user.id;
    });
    beforeEach(() => {
      clock = new TestClock();
    });
    after(() => t.close());

    it('keeps 10,000 opened secrets by default', () => {
      assert.equal(SESSION_SECRET_CACHE_SIZE, 10_000);
    });

    it('refreshes a session it started without opening its sealed secret, along the whole chain', async () => {
      const { box, service } = instance();
      let token = (await service.start(userId, metadata)).refreshToken;
      for (let i = 0; i < 3; i += 1) token = await refreshed(service, token);
      assert.equal(box.opens, 0);
    });

    it('opens a secret again once the session fell out of the cache, and still refreshes it', async () => {
      const { box, service } = instance(2);
      const a = await service.start(userId, metadata);
      const b = await service.start(userId, metadata);
      await service.start(userId, metadata); // the third evicts the least recently used: a
      const nextB = await refreshed(service, b.refreshToken);
      assert.equal(box.opens, 0, 'b is still cached');
      const nextA = await refreshed(service, a.refreshToken);
      assert.equal(box.opens, 1, 'a was evicted, so its sealed secret is opened again');
      await refreshed(service, nextA);
      await refreshed(service, nextB);
      assert.equal(box.opens, 1, 'a is cached again, b was used more recently than the third');
    });

    it('two instances on one database rotate one chain in turn, and reuse on either revokes it for both', async () => {
      const one = instance();
      const two = instance();
      const t0 = (await one.service.start(userId, metadata)).refreshToken;
      const t1 = await refreshed(one.service, t0);
      // The other instance has never seen the session: it opens the secret and takes the chain on.
      const t2 = await refreshed(two.service, t1);
      assert.equal(two.box.opens, 1);
      // Back on the first instance: its kept MAC is for t1's successor as it derived it, generation 1;
      // t2 was derived elsewhere with generation 2 and must be checked against the secret.
      const t3 = await refreshed(one.service, t2);
      assert.equal(one.box.opens, 0);
      clock.advance(policy.refreshReuseGrace + 1);
      // t1 was rotated long ago: a replay, refused on the instance that never handed it out...
      assert.equal(await refusal(two.service, t1), 'reused');
      // ...and the session is gone on the other one too, whatever it kept in memory,
      // which it drops on reading the revoked row: the next look opens the sealed secret.
      assert.equal(await refusal(one.service, t3), 'revoked');
      assert.equal(one.box.opens, 0);
      assert.equal(await one.service.inspect(t3), null);
      assert.equal(one.box.opens, 1);
    });

    it('within the reuse grace both tokens give the same successor, and that successor then rotates', async () => {
      const { box, service } = instance();
      const t0 = (await service.start(userId, metadata)).refreshToken;
      const t1 = await refreshed(service, t0);
      clock.advance(policy.refreshReuseGrace - 1);
      assert.equal(await refreshed(service, t0), t1);
      const t2 = await refreshed(service, t1);
      assert.notEqual(t2, t1);
      // t2's session and generation with one character of its MAC changed: refused, though a MAC is kept for them.
      const at = t2.length - 10;
      const forged = `${t2.slice(0, at)}${t2[at] === 'A' ? 'B' : 'A'}${t2.slice(at + 1)}`;
      assert.equal(await refusal(service, forged), 'invalid');
      assert.equal(box.opens, 0);
    });

    it('still refreshes a cached session whose sealed secret was re-wrapped meanwhile, opening the new text', async () => {
      const { box, service } = instance();
      const started = await service.start(userId, metadata);
      // What `tessera keys rewrap` does to a row: the same secret, sealed again.
      const other = new SecretBox(TEST_KEY_ENCRYPTION_SECRET);
      const row = await t.app.db.prisma.session.findUniqueOrThrow({ where: { id: started.sessionId } });
      const resealed = other.reseal(row.secret, 'session-secret', row.id);
      await t.app.db.prisma.session.update({ where: { id: row.id }, data: { secret: resealed } });
      const next = await refreshed(service, started.refreshToken);
      assert.equal(box.opens, 1, 'the new sealed text is opened (and checked) once');
      await refreshed(service, next);
      assert.equal(box.opens, 1);
    });

    it('reports the owner disabled, and refuses expired sessions, though their secrets are cached', async () => {
      const { service } = instance();
      const user = await t.app.db.prisma.user.create({
        data: { id: randomUUID(), username: 'gone', usernameKey: `gone-${randomUUID()}`, passwordHash: 'x', roles: '' },
      });
      const disabled = await service.start(user.id, metadata);
      await t.app.db.prisma.user.update({ where: { id: user.id }, data: { disabledAt: new Date(clock.now()) } });
      const outcome = await service.refresh(disabled.refreshToken);
      // The token service refuses it (tested on the token endpoint); here: the owner is read as disabled.
      assert.ok(outcome.ok && outcome.user.disabledAt instanceof Date);

      const idle = await service.start(userId, metadata);
      clock.advance(policy.refreshTokenTtl);
      assert.equal(await refusal(service, idle.refreshToken), 'expired', 'idle-expired');

      let token = (await service.start(userId, metadata)).refreshToken;
      for (let lived = 0; lived < policy.sessionMaxAge; lived += policy.refreshTokenTtl / 2) {
        token = await refreshed(service, token);
        clock.advance(policy.refreshTokenTtl / 2);
      }
      // Kept alive by refreshes until its absolute end (where the idle expiry is capped).
      assert.equal(await refusal(service, token), 'expired', 'past its absolute end');
    });

    it('keeps no secret of a session revoked while its one-statement refresh was in flight', async () => {
      let release = () => {};
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      let rotated = () => {};
      const rotating = new Promise<void>((resolve) => {
        rotated = resolve;
      });
      /** Rotates at once, then answers only once released (a slow round trip). */
      class SlowRepository extends SessionRepository {
        override async rotateIfCurrent(...args: Parameters<SessionRepository['rotateIfCurrent']>) {
          const user = await super.rotateIfCurrent(...args);
          rotated();
          await held;
          return user;
        }
      }
      const box = new CountingBox(TEST_KEY_ENCRYPTION_SECRET);
      const service = new SessionService(new SlowRepository(t.app.db.prisma, t.app.db.sql), box, policy, clock.now);
      const started = await service.start(userId, metadata);
      const refresh = service.refresh(started.refreshToken);
      await rotating;
      assert.equal(await service.revoke(userId, started.sessionId), true);
      release();
      assert.ok((await refresh).ok, 'rotated before the revocation');
      // Had the refresh put its entry back, this look would use it instead of opening the sealed secret.
      assert.equal(await service.inspect(started.refreshToken), null);
      assert.equal(box.opens, 1);
    });

    it('forgets a session it revoked: the next look at it opens the sealed secret again', async () => {
      const { box, service } = instance();
      const loggedOut = (await service.start(userId, metadata)).refreshToken;
      assert.ok(await service.inspect(loggedOut));
      assert.equal(box.opens, 0);
      assert.ok(await service.revokeByToken(loggedOut));
      assert.equal(await service.inspect(loggedOut), null);
      assert.equal(box.opens, 1);
      // Nor is a revoked session's secret kept when it is looked at again.
      assert.equal(await refusal(service, loggedOut), 'revoked');
      assert.equal(box.opens, 2);

      const byId = await service.start(userId, metadata);
      assert.equal(await service.revoke(randomUUID(), byId.sessionId), false, 'not the owner: nothing changes');
      assert.ok(await service.inspect(byId.refreshToken));
      assert.equal(box.opens, 2, 'still cached after a refused revoke');
      assert.equal(await service.revoke(userId, byId.sessionId), true);
      assert.equal(await service.inspect(byId.refreshToken), null);
      assert.equal(box.opens, 3);

      const all = [await service.start(userId, metadata), await service.start(userId, metadata)];
      assert.ok((await service.revokeAll(userId)) >= 2);
      for (const session of all) assert.equal(await service.inspect(session.refreshToken), null);
      assert.equal(box.opens, 5);
    });
  });
}
