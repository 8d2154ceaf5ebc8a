import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { type Database, openDatabase } from '../db/database.js';
import { applyMigrations } from '../db/migrate.js';

declare module 'fastify' {
  interface FastifyInstance {
    db: Database;
  }
}

/**
 * Applies pending migrations (under a cross-process lock, so instances starting
 * together apply them once) and opens the database the app works on.
 */
export default fp(
  async function database(app: FastifyInstance, options: { config: Config }) {
    const { applied } = await applyMigrations({
      databaseUrl: options.config.databaseUrl,
      log: (message) => app.log.debug({ component: 'schema-engine' }, message),
    });
    if (applied.length > 0) app.log.info({ applied }, 'applied database migrations');
    const db = await openDatabase(options.config.databaseUrl, {
      sqliteSynchronous: options.config.sqliteSynchronous,
      postgresPreparedStatements: options.config.postgresPreparedStatements,
    });
    app.decorate('db', db);
    app.addHook('onClose', async () => {
      await db.close();
    });
  },
  { name: 'database' },
);
