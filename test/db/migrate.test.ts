import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openDatabase } from '../../src/db/database.js';
import { applyMigrations, migrationSource } from '../../src/db/migrate.js';
import { createTestDatabase, type TestDatabase, testProviders } from '../helpers/databases.js';

for (const provider of testProviders()) {
  describe(`migrations on ${provider}`, () => {
    let database: TestDatabase;
    before(async () => {
      database = await createTestDatabase(provider);
    });
    after(async () => {
      await database.drop();
    });

    it('two instances migrating an empty database at once apply each migration once', async () => {
      const expected = migrationSource(provider).migrations.map((migration) => migration.name);
      const results = await Promise.all([
        applyMigrations({ databaseUrl: database.url }),
        applyMigrations({ databaseUrl: database.url }),
      ]);
      const applied = results.flatMap((result) => result.applied).sort();
      assert.deepEqual(applied, expected);

      // Prisma's own bookkeeping, so `prisma migrate deploy` agrees with us.
      const db = await openDatabase(database.url);
      try {
        const rows = await db.prisma.$queryRawUnsafe<{ migration_name: string; finished_at: unknown }[]>(
          'SELECT migration_name, finished_at FROM _prisma_migrations ORDER BY migration_name',
        );
        assert.deepEqual(
          rows.map((row) => row.migration_name),
          expected,
        );
        assert.ok(rows.every((row) => row.finished_at !== null));
        // The tables exist and work.
        assert.equal(await db.prisma.user.count(), 0);
      } finally {
        await db.close();
      }
    });

    it('a second run applies nothing', async () => {
      const { applied } = await applyMigrations({ databaseUrl: database.url });
      assert.deepEqual(applied, []);
    });
  });
}
