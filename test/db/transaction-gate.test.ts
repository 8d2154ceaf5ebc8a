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

  /** Opens an interactive transaction that writes, stays open `ms`, then rolls back. */
  function rolledBackTransaction(ms: number): Promise<unknown> {
    return t.app.db.prisma
      .$transaction(
        async (tx) => {
          await tx.signingKey.updateMany({ where: { status: 'no such status' }, data: { status: 'retired' } });
          await sleep(ms);
          throw new Error('rolled back on purpose');
        },
        { timeout: 10_000 },
      )
      .catch((error: unknown) => error);
  }

  it('a refresh during a rolled-back transaction stays rotated, and its new token works', async () => {
    const user = await registerAndLogin(t.app);
    const transaction = rolledBackTransaction(150);
    await sleep(30);
    const refreshed = await t.app.inject({
      method: 'POST',
      url: '/oauth/token',
      payload: { grant_type: 'refresh_token', refresh_token: user.refresh_token },
    });
    assert.equal(refreshed.statusCode, 200, refreshed.body);
    assert.match(String(((await transaction) as Error).message), /rolled back on purpose/);

    const next = await t.app.inject({
      method: 'POST',
      url: '/oauth/token',
      payload: { grant_type: 'refresh_token', refresh_token: refreshed.json().refresh_token },
    });
    assert.equal(next.statusCode, 200, next.body);
  });

  it('a registration during a rolled-back transaction is kept', async () => {
    const transaction = rolledBackTransaction(150);
    await sleep(30);
    const created = await t.app.inject({
      method: 'POST',
      url: '/v1/users',
      payload: { username: 'made-during-a-transaction', password: 'correct horse battery staple' },
    });
    assert.equal(created.statusCode, 201, created.body);
    await transaction;
    const found = await t.app.db.prisma.user.findFirst({ where: { username: 'made-during-a-transaction' } });
    assert.ok(found, 'the user is still there after the rollback');
  });

  it('transactions one after another still commit', async () => {
    const before = await t.app.db.prisma.signingKey.count();
    const [a, b] = await Promise.all([
      t.app.db.prisma.$transaction(async (tx) => tx.signingKey.count()),
      t.app.db.prisma.$transaction(async (tx) => tx.signingKey.count()),
    ]);
    assert.equal(a, before);
    assert.equal(b, before);
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
