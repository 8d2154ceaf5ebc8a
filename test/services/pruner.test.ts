import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { deleteIdleExpiredSessions } from '../../src/repositories/session-repository.js';
import { registerAndLogin, startTestApp, type TestApp, TestClock } from '../helpers/app.js';
import { testProviders } from '../helpers/databases.js';

for (const provider of testProviders()) {
  describe(`pruning ended sessions and old audit events (${provider})`, () => {
    const clock = new TestClock();
    let t: TestApp;
    before(async () => {
      t = await startTestApp(provider, {
        now: clock.now,
        env: { REFRESH_TOKEN_TTL: '3600', SESSION_MAX_AGE: '7200', AUDIT_RETENTION_DAYS: '1', PRUNE_INTERVAL: '0' },
      });
    });
    after(() => t.close());

    it('deletes sessions only after they ended and left the revocation window, keeps live ones', async () => {
      const sessionCount = () => t.app.db.prisma.session.count();
      const idle = await registerAndLogin(t.app);
      const revoked = await registerAndLogin(t.app);
      await t.app.inject({ method: 'POST', url: '/oauth/revoke', payload: { token: revoked.refresh_token } });
      assert.equal(await sessionCount(), 2);

      // Just revoked: still listed by the revocation feed, so kept.
      assert.deepEqual(await t.app.pruner.prune(), { sessions: 0, auditEvents: 0 });

      // Two hours on: the revoked one is past the window; the idle one expired (1 h idle TTL) long ago.
      clock.advance(2 * 3600);
      const active = await registerAndLogin(t.app);
      const pruned = await t.app.pruner.prune();
      assert.equal(pruned.sessions, 1);
      assert.equal(await sessionCount(), 2);
      clock.advance(1800);
      assert.equal((await t.app.pruner.prune()).sessions, 1);
      const left = await t.app.db.prisma.session.findMany({ select: { userId: true } });
      assert.deepEqual(
        left.map((row) => row.userId),
        [active.userId],
      );
      // The live session still works.
      const refreshed = await t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'refresh_token', refresh_token: active.refresh_token },
      });
      assert.equal(refreshed.statusCode, 200);
      void idle;

      // Audit events older than a day go.
      const before = await t.app.db.prisma.auditEvent.count();
      assert.ok(before > 0);
      clock.advance(25 * 3600);
      const later = await t.app.pruner.prune();
      assert.equal(later.auditEvents, before);
    });
  });

  describe(`pruning idle-expired sessions across a large table (${provider})`, () => {
    const clock = new TestClock();
    let t: TestApp;
    before(async () => {
      t = await startTestApp(provider, { now: clock.now, env: { PRUNE_INTERVAL: '0' } });
    });
    after(() => t.close());

    it('finds every idle-expired session, whatever its place in the table, and keeps the others', async () => {
      const owner = await registerAndLogin(t.app);
      const now = clock.now();
      const day = 24 * 3600 * 1000;
      // Interleaved ids, so expired and live sessions share every primary-key range the scan visits.
      const rows = Array.from({ length: 5000 }, (_, i) => {
        const expired = i % 5 !== 0;
        return {
          id: `seeded-${String(i).padStart(5, '0')}-${expired ? 'idle' : 'live'}`,
          userId: owner.userId,
          secret: 'not a real secret',
          lastRotatedAt: new Date(now - 20 * day),
          refreshExpiresAt: new Date(expired ? now - 6 * day : now + day),
          expiresAt: new Date(now + 10 * day),
        };
      });
      await t.app.db.prisma.session.createMany({ data: rows });
      const before = await t.app.db.prisma.session.count();

      const pruned = await t.app.pruner.prune();
      assert.equal(pruned.sessions, 4000);
      assert.equal(await t.app.db.prisma.session.count(), before - 4000);
      const idleLeft = await t.app.db.prisma.session.count({ where: { id: { endsWith: '-idle' } } });
      assert.equal(idleLeft, 0);
      // The owner's own session (refreshed just now) and the live seeded ones still refresh.
      const refreshed = await t.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'refresh_token', refresh_token: owner.refresh_token },
      });
      assert.equal(refreshed.statusCode, 200);
      assert.equal(await t.app.db.prisma.session.count({ where: { id: { endsWith: '-live' } } }), 1000);
      // A second pass finds nothing more.
      assert.equal((await t.app.pruner.prune()).sessions, 0);
    });

    it('scans a table of exactly a whole number of chunks to its end, each row once', async () => {
      await t.app.db.prisma.session.deleteMany({});
      const owner = await registerAndLogin(t.app);
      await t.app.db.prisma.session.deleteMany({});
      const now = clock.now();
      await t.app.db.prisma.session.createMany({
        data: Array.from({ length: 40 }, (_, i) => ({
          id: `exact-${String(i).padStart(2, '0')}`,
          userId: owner.userId,
          secret: 'not a real secret',
          lastRotatedAt: new Date(now),
          refreshExpiresAt: new Date(i % 2 === 0 ? now - 24 * 3600 * 1000 : now + 3600 * 1000),
          expiresAt: new Date(now + 3600 * 1000),
        })),
      });
      let cursor: string | null = null;
      let deleted = 0;
      let chunks = 0;
      do {
        const chunk = await deleteIdleExpiredSessions(t.app.db.prisma, new Date(now - 3600 * 1000), cursor, 10);
        deleted += chunk.deleted;
        cursor = chunk.next;
        chunks += 1;
      } while (cursor !== null && chunks < 100);
      assert.equal(deleted, 20);
      // Four full chunks, then one that finds the end.
      assert.equal(chunks, 5);
      assert.equal(await t.app.db.prisma.session.count(), 20);
    });
  });
}
