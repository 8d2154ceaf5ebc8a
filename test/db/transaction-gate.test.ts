// A Prisma transaction on SQLite shares its one connection with every other
// request: their writes must not run inside it, or its rollback undoes them.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { TransactionGate } from '../../src/db/transaction-gate.js';
import { registerAndLogin, startTestApp, type TestApp } from '../helpers/app.js';

describe('SQLite: writes made while a transaction is open are not part of it', () => {
  let t: TestApp;
  before(async () => {
    t = await startTestApp('sqlite');
  });
  after(() => t.close());

  /**
   * Opens an interactive transaction that writes, stays open `ms`, then rolls
   * back; `opened` resolves once it has written, so the caller acts while it is open.
   */
  function rolledBackTransaction(ms: number): { opened: Promise<void>; ended: Promise<unknown> } {
    let markOpened: () => void = () => {};
    const opened = new Promise<void>((resolve) => {
      markOpened = resolve;
    });
    const ended = t.app.db.prisma
      .$transaction(
        async (tx) => {
          await tx.signingKey.updateMany({ where: { status: 'no such status' }, data: { status: 'retired' } });
          markOpened();
          await sleep(ms);
          throw new Error('rolled back on purpose');
        },
        { timeout: 10_000 },
      )
      .catch((error: unknown) => error);
    return { opened, ended };
  }

  it('a refresh during a rolled-back transaction stays rotated, and its new token works', async () => {
    const user = await registerAndLogin(t.app);
    const transaction = rolledBackTransaction(150);
    await transaction.opened;
    const refreshed = await t.app.inject({
      method: 'POST',
      url: '/oauth/token',
      payload: { grant_type: 'refresh_token', refresh_token: user.refresh_token },
    });
    assert.equal(refreshed.statusCode, 200, refreshed.body);
    assert.match(String(((await transaction.ended) as Error).message), /rolled back on purpose/);

    const next = await t.app.inject({
      method: 'POST',
      url: '/oauth/token',
      payload: { grant_type: 'refresh_token', refresh_token: refreshed.json().refresh_token },
    });
    assert.equal(next.statusCode, 200, next.body);
  });

  it('a registration during a rolled-back transaction is kept', async () => {
    const transaction = rolledBackTransaction(150);
    await transaction.opened;
    const created = await t.app.inject({
      method: 'POST',
      url: '/v1/users',
      payload: { username: 'made-during-a-transaction', password: 'correct horse battery staple' },
    });
    assert.equal(created.statusCode, 201, created.body);
    await transaction.ended;
    const found = await t.app.db.prisma.user.findFirst({ where: { username: 'made-during-a-transaction' } });
    assert.ok(found, 'the user is still there after the rollback');
  });

  it('a transaction whose COMMIT fails leaves nothing open: later writes and transactions work', async () => {
    // A deferred foreign-key violation passes every statement and fails at COMMIT.
    const failed = await t.app.db.prisma
      .$transaction(async (tx) => {
        await tx.$executeRawUnsafe('PRAGMA defer_foreign_keys = ON');
        await tx.auditEvent.create({ data: { id: 'audit-in-a-failed-commit', type: 'test_event' } });
        await tx.$executeRawUnsafe(
          `INSERT INTO sessions (id, user_id, secret, generation, created_at, last_rotated_at, refresh_expires_at, expires_at)
           VALUES ('session-of-nobody', 'no-such-user', 'x', 0, 0, 0, 0, 0)`,
        );
      })
      .catch((error: unknown) => error);
    assert.ok(failed instanceof Error, 'the COMMIT failed');
    // Nothing of it was kept, and the next writes are not swallowed by a transaction left open.
    assert.equal(await t.app.db.prisma.auditEvent.count({ where: { id: 'audit-in-a-failed-commit' } }), 0);
    const created = await t.app.inject({
      method: 'POST',
      url: '/v1/users',
      payload: { username: 'made-after-a-failed-commit', password: 'correct horse battery staple' },
    });
    assert.equal(created.statusCode, 201, created.body);
    const committed = await Promise.race([
      t.app.db.prisma.$transaction(async (tx) =>
        tx.auditEvent.create({ data: { id: 'audit-after-a-failed-commit', type: 'test_event' } }),
      ),
      sleep(5000).then(() => 'timed out'),
    ]);
    assert.notEqual(committed, 'timed out', 'a later transaction starts');
    assert.equal(await t.app.db.prisma.auditEvent.count({ where: { id: 'audit-after-a-failed-commit' } }), 1);
  });

  it('concurrent transactions each commit', async () => {
    await Promise.all(
      ['a', 'b', 'c'].map((name) =>
        t.app.db.prisma.$transaction(async (tx) => {
          await tx.auditEvent.create({ data: { id: `audit-concurrent-${name}`, type: 'test_event' } });
          await sleep(20);
        }),
      ),
    );
    assert.equal(await t.app.db.prisma.auditEvent.count({ where: { id: { startsWith: 'audit-concurrent-' } } }), 3);
  });
});

describe('TransactionGate', () => {
  it('holds work back while a transaction is open, in order, and lets it through after', async () => {
    const gate = new TransactionGate();
    const order: string[] = [];
    await gate.run(async () => order.push('before'));
    const leave = await gate.enter();
    assert.equal(gate.open, true);
    const held = gate.run(async () => order.push('held'));
    await sleep(10);
    order.push('commit');
    leave();
    await held;
    assert.equal(gate.open, false);
    assert.deepEqual(order, ['before', 'commit', 'held']);
  });

  it('a second transaction waits for the first', async () => {
    const gate = new TransactionGate();
    const leaveFirst = await gate.enter();
    let second = false;
    const entering = gate.enter().then((leave) => {
      second = true;
      return leave;
    });
    await sleep(10);
    assert.equal(second, false);
    leaveFirst();
    const leaveSecond = await entering;
    assert.equal(gate.open, true);
    leaveSecond();
    assert.equal(gate.open, false);
  });
});
