import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { AuditRepository } from '../../src/repositories/audit-repository.js';
import { SessionRepository } from '../../src/repositories/session-repository.js';
import { UserRepository } from '../../src/repositories/user-repository.js';
import { startTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, TEST_POSTGRES_URL, type TestDatabase, testProviders } from '../helpers/databases.js';

// The refresh and login paths' statements run straight through the driver
// (src/db/sql-driver.ts); rows they read and write must be exactly the rows
// the Prisma client reads and writes, on both databases, in any time zone.
for (const provider of testProviders()) {
  describe(`repository driver statements (${provider})`, () => {
    let t: TestApp;
    let sessions: SessionRepository;
    let userId: string;
    let database: TestDatabase;
    const zone = process.env.TZ;

    before(async () => {
      // Far from UTC, in the process and in the database session, so a date
      // read or bound in the wrong zone would be hours off.
      process.env.TZ = 'Pacific/Kiritimati';
      database = await createTestDatabase(provider);
      if (provider === 'postgres') {
        const name = new URL(database.url).pathname.slice(1);
        const admin = new pg.Client({ connectionString: TEST_POSTGRES_URL });
        await admin.connect();
        await admin.query(`ALTER DATABASE ${name} SET timezone TO 'America/Adak'`);
        await admin.end();
      }
      t = await startTestApp(provider, { databaseUrl: database.url });
      sessions = new SessionRepository(t.app.db.prisma, t.app.db.sql);
      const user = await t.app.db.prisma.user.create({
        data: {
          id: randomUUID(),
          username: 'repo',
          usernameKey: `repo-${randomUUID()}`,
          passwordHash: 'x',
          roles: 'admin',
        },
      });
      userId = user.id;
    });
    after(async () => {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
      await t.close();
      await database.drop();
    });

    const newSession = () => {
      const now = new Date(Date.UTC(2026, 11, 1, 23, 59, 58, 123));
      return {
        id: randomUUID(),
        userId,
        secret: 'sealed-secret',
        generation: 0,
        createdAt: now,
        lastRotatedAt: now,
        refreshExpiresAt: new Date(now.getTime() + 3600_000),
        expiresAt: new Date(now.getTime() + 86_400_000),
        userAgent: 'test agent',
        ipAddress: '127.0.0.1',
      };
    };

    if (provider === 'postgres') {
      it('runs against a database whose session time zone is not UTC', async () => {
        const [row] = await t.app.db.sql.query<{ zone: string }>('SELECT current_setting($1) AS "zone"', ['TimeZone']);
        assert.equal(row?.zone, 'America/Adak');
      });
    }

    it('reads a session written by Prisma with its user, to the millisecond', async () => {
      const session = newSession();
      await t.app.db.prisma.session.create({ data: session });
      const found = await sessions.findWithUser(session.id);
      assert.ok(found);
      assert.equal(found.generation, 0);
      assert.equal(found.lastRotatedAt.toISOString(), session.lastRotatedAt.toISOString());
      assert.equal(found.refreshExpiresAt.toISOString(), session.refreshExpiresAt.toISOString());
      assert.equal(found.expiresAt.toISOString(), session.expiresAt.toISOString());
      assert.equal(found.revokedAt, null);
      assert.equal(found.secret, 'sealed-secret');
      assert.equal(found.user.id, userId);
      assert.deepEqual(found.user.roles, ['admin']);
      assert.equal('passwordHash' in found.user, false, 'a refresh never reads the password hash');
      assert.equal(await sessions.findWithUser(randomUUID()), null);
    });

    it('creates a session that Prisma reads back exactly', async () => {
      const session = newSession();
      await sessions.create(session);
      const row = await t.app.db.prisma.session.findUniqueOrThrow({ where: { id: session.id } });
      assert.deepEqual(row, { ...session, revokedAt: null, revokedReason: null });
      // Stored as Prisma stores it: its own date filters still match the values.
      const matched = await t.app.db.prisma.session.count({
        where: { id: session.id, createdAt: session.createdAt, expiresAt: session.expiresAt },
      });
      assert.equal(matched, 1);
    });

    it('inserts an audit event that Prisma reads back exactly', async () => {
      const audit = new AuditRepository(t.app.db.prisma, t.app.db.sql);
      const event = {
        id: randomUUID(),
        type: 'login_succeeded',
        userId,
        sessionId: randomUUID(),
        ipAddress: '192.0.2.1',
        userAgent: 'test agent',
        requestId: 'req-1',
        details: JSON.stringify({ retryAfter: 3 }),
        createdAt: new Date(Date.UTC(2026, 11, 1, 23, 59, 59, 987)),
      };
      await audit.insert(event);
      await audit.insert({ ...event, id: randomUUID(), userId: null, sessionId: null, details: null });
      assert.deepEqual(await t.app.db.prisma.auditEvent.findUniqueOrThrow({ where: { id: event.id } }), event);
      const listed = await audit.listForUser(userId, 10, new Date(event.createdAt.getTime() + 1));
      assert.deepEqual(
        listed.map((row) => row.id),
        [event.id],
      );
    });

    it('finds a user written by Prisma by its username key, dates and roles as Prisma reads them', async () => {
      const users = new UserRepository(t.app.db.prisma, t.app.db.sql);
      const createdAt = new Date(Date.UTC(2026, 0, 31, 23, 30, 0, 5));
      const written = await t.app.db.prisma.user.create({
        data: {
          id: randomUUID(),
          username: 'Zoë',
          usernameKey: `zoë-${randomUUID()}`,
          passwordHash: '$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g',
          roles: 'admin auditor',
          createdAt,
          disabledAt: new Date(createdAt.getTime() + 1),
        },
      });
      assert.deepEqual(await users.findByUsernameKey(written.usernameKey), {
        id: written.id,
        username: 'Zoë',
        passwordHash: written.passwordHash,
        roles: ['admin', 'auditor'],
        createdAt,
        disabledAt: new Date(createdAt.getTime() + 1),
      });
      assert.equal(await users.findByUsernameKey('nobody'), null);
    });

    it('rotates once per generation, and Prisma reads the rotated row exactly', async () => {
      const session = newSession();
      await sessions.create(session);
      const now = new Date(session.createdAt.getTime() + 61_001);
      const idle = new Date(now.getTime() + 7_200_000);
      assert.equal(await sessions.rotate(session.id, 0, now, idle), true);
      assert.equal(await sessions.rotate(session.id, 0, now, idle), false, 'generation 0 is gone');
      const row = await sessions.findById(session.id);
      assert.ok(row);
      assert.equal(row.generation, 1);
      assert.equal(row.lastRotatedAt.toISOString(), now.toISOString());
      assert.equal(row.refreshExpiresAt.toISOString(), idle.toISOString());
      // Stored as Prisma stores it: its own date filters still match the value.
      const matched = await t.app.db.prisma.session.count({ where: { id: session.id, lastRotatedAt: now } });
      assert.equal(matched, 1);
      // A revoked session no longer rotates.
      assert.equal(await sessions.revoke(session.id, 'logout', now), true);
      assert.equal(await sessions.rotate(session.id, 1, now, idle), false);
    });

    it('rotates in one statement only a current, unrevoked, unexpired session of its sealed secret and an enabled user', async () => {
      const session = newSession();
      await sessions.create(session);
      // A millisecond before the idle expiry: dates compare as instants, in these far-apart zones too.
      const now = new Date(session.refreshExpiresAt.getTime() - 1);
      const idle = new Date(now.getTime() + 3_600_000);
      const rotate = (generation: number, at = now, sealed = 'sealed-secret') =>
        sessions.rotateIfCurrent(session.id, generation, sealed, at, idle);
      assert.equal(await rotate(0, now, 'another-sealed-secret'), null, 'not the secret the caller checked against');
      assert.equal(await rotate(1), null, 'not the current generation');
      assert.equal(await rotate(0, session.refreshExpiresAt), null, 'idle-expired at that very millisecond');
      assert.deepEqual(await rotate(0), { id: userId, username: 'repo', roles: ['admin'], disabledAt: null });
      assert.equal(await rotate(0), null, 'generation 0 is gone');
      const row = await t.app.db.prisma.session.findUniqueOrThrow({ where: { id: session.id } });
      assert.equal(row.generation, 1);
      assert.equal(row.lastRotatedAt.toISOString(), now.toISOString());
      assert.equal(row.refreshExpiresAt.toISOString(), idle.toISOString());
      // Prisma's own date filters match the values written.
      assert.equal(await t.app.db.prisma.session.count({ where: { id: session.id, refreshExpiresAt: idle } }), 1);

      // The absolute end counts on its own, even with a (never written) idle expiry past it.
      await t.app.db.prisma.session.update({
        where: { id: session.id },
        data: { refreshExpiresAt: new Date(session.expiresAt.getTime() + 3_600_000) },
      });
      assert.equal(await rotate(1, session.expiresAt), null, 'expired at its absolute end');
      assert.equal((await rotate(1, new Date(session.expiresAt.getTime() - 1)))?.id, userId);

      await t.app.db.prisma.user.update({ where: { id: userId }, data: { disabledAt: now } });
      try {
        assert.equal(await rotate(2), null, 'the user is disabled');
      } finally {
        await t.app.db.prisma.user.update({ where: { id: userId }, data: { disabledAt: null } });
      }
      assert.equal(await sessions.revoke(session.id, 'logout', now), true);
      assert.equal(await rotate(2), null, 'revoked');
      const after = await t.app.db.prisma.session.findUniqueOrThrow({ where: { id: session.id } });
      assert.equal(after.generation, 2, 'no refused call changed the row');
    });
  });
}
