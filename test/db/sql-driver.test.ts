// POSTGRES_PREPARED_STATEMENTS: the driver's statements are named prepared
// statements on PostgreSQL unless turned off (for a pooler that cannot keep them).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openDatabase } from '../../src/db/database.js';
import { createTestDatabase, type TestDatabase, testProviders } from '../helpers/databases.js';

const PREPARED = "SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'tessera\\_%'";

describe('PostgreSQL driver statements', { skip: !testProviders().includes('postgres') && 'no PostgreSQL' }, () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase('postgres');
  });
  after(() => database?.drop());

  for (const preparedStatements of [true, false]) {
    it(`are ${preparedStatements ? '' : 'not '}named prepared statements with POSTGRES_PREPARED_STATEMENTS=${preparedStatements}`, async () => {
      // One connection, so that the second query sees what the first left on it.
      const db = await openDatabase(database.url, { poolSize: 1, postgresPreparedStatements: preparedStatements });
      try {
        const rows = await db.sql.query<{ answer: number }>('SELECT $1::int AS answer', [42]);
        assert.deepEqual(rows, [{ answer: 42 }]);
        const [prepared] = await db.sql.query<{ n: number }>(PREPARED, []);
        // With them on: the first statement and this one.
        assert.equal(prepared?.n, preparedStatements ? 2 : 0);
        // The same text again reuses its statement.
        await db.sql.query('SELECT $1::int AS answer', [7]);
        const [again] = await db.sql.query<{ n: number }>(PREPARED, []);
        assert.equal(again?.n, preparedStatements ? 2 : 0);
      } finally {
        await db.close();
      }
    });
  }
});
