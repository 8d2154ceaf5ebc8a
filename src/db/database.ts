import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { PrismaBetterSqlite3 } from '@prisma/adapter-better-sqlite3';
import { PrismaPg } from '@prisma/adapter-pg';
import type { Database as BetterSqlite3Connection } from 'better-sqlite3';
import pg from 'pg';
import type { PrismaClient as SqlitePrismaClient } from '../generated/sqlite/client.js';
import { inDatabaseSpan } from '../telemetry/tracing.js';
import { type DatabaseProvider, providerOf, sqliteFilePath } from './migrate.js';
import { postgresDriver, type SqlDriver, sqliteDriver } from './sql-driver.js';
import { withStatementCache } from './statement-cache.js';
import type { TransactionGate } from './transaction-gate.js';

/**
 * Both generated clients expose the same model API (the PostgreSQL schema is
 * derived from the SQLite one), so the repositories are written once against
 * the SQLite client's type.
 */
export type PrismaClient = SqlitePrismaClient;

export interface Database {
  readonly provider: DatabaseProvider;
  readonly prisma: PrismaClient;
  /** The hot path's statements, straight through the driver (see src/db/sql-driver.ts); repositories only. */
  readonly sql: SqlDriver;
  /** Resolves when the database answers a trivial query. */
  ping(): Promise<void>;
  /** PostgreSQL connection pool state (for metrics); null on SQLite. */
  poolStats(): { total: number; idle: number; waiting: number } | null;
  close(): Promise<void>;
}

/** Options for {@link openDatabase}. */
export interface OpenDatabaseOptions {
  /** PostgreSQL pool size per instance. */
  poolSize?: number;
  /** SQLite `PRAGMA synchronous` (default `normal`; see SQLITE_SYNCHRONOUS in .env.example). */
  sqliteSynchronous?: 'normal' | 'full';
  /** PostgreSQL: named prepared statements for the driver's queries (default true). */
  postgresPreparedStatements?: boolean;
}

/**
 * Wraps every model query in a span `db.<model>.<operation>` (a no-op unless
 * tracing is on). The extended client has the same API as the plain one.
 */
function traced<T extends PrismaClient>(prisma: T, system: SqlDriver['system']): T {
  return prisma.$extends({
    query: {
      $allModels: {
        $allOperations({ model, operation, args, query }) {
          return inDatabaseSpan(system, model, operation, () => query(args));
        },
      },
    },
  }) as unknown as T;
}

/**
 * Opens the database named by DATABASE_URL: `file:` selects SQLite through
 * better-sqlite3, `postgres(ql)://` selects PostgreSQL through node-postgres.
 * SQLite runs in WAL mode. With `synchronous = NORMAL` (the default) a commit
 * is not fsynced: it survives a crash of the process, and a power loss can
 * lose the last commits but never corrupts the database. `FULL` fsyncs every
 * commit, which better-sqlite3 does on the event loop (milliseconds per write,
 * during which nothing else is served).
 */
export async function openDatabase(databaseUrl: string, options: OpenDatabaseOptions = {}): Promise<Database> {
  const provider = providerOf(databaseUrl);
  if (provider === 'sqlite') {
    const file = sqliteFilePath(databaseUrl);
    mkdirSync(dirname(file), { recursive: true });
    // timeout: how long a writer waits for another process's lock (busy_timeout).
    const current: { connection?: BetterSqlite3Connection; gate?: TransactionGate } = {};
    const adapter = withStatementCache(new PrismaBetterSqlite3({ url: file, timeout: 5000 }), (connection, gate) => {
      current.connection = connection;
      current.gate = gate;
    });
    // Each generated client loads its own query compiler (wasm); import only the one in use.
    const { PrismaClient: SqliteClient } = await import('../generated/sqlite/client.js');
    const base = new SqliteClient({ adapter });
    const prisma = traced(base, 'sqlite');
    await prisma.$queryRawUnsafe('PRAGMA journal_mode = WAL');
    await prisma.$queryRawUnsafe(`PRAGMA synchronous = ${options.sqliteSynchronous === 'full' ? 'FULL' : 'NORMAL'}`);
    await prisma.$queryRawUnsafe('PRAGMA foreign_keys = ON');
    // The PRAGMAs opened the connection (the pinned adapter keeps it in `client`).
    if (!current.connection) throw new Error('the SQLite adapter did not expose its better-sqlite3 connection');
    return {
      provider,
      prisma,
      sql: sqliteDriver(
        () => current.connection as BetterSqlite3Connection,
        () => current.gate,
      ),
      ping: async () => {
        await prisma.$queryRawUnsafe('SELECT 1');
      },
      poolStats: () => null,
      close: () => prisma.$disconnect(),
    };
  }
  // tessera owns the pool (rather than the adapter) so that closing the
  // database really ends every connection.
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: options.poolSize ?? 10,
    // Fail fast when the database is down instead of queueing requests forever:
    // a new connection gets 3 s, a query 5 s (client side, so a database that
    // stops answering without closing the socket cannot hang a request).
    connectionTimeoutMillis: 3000,
    query_timeout: 5000,
    statement_timeout: 5000,
    idleTimeoutMillis: 30_000,
  });
  // An idle connection dropped by the server must not crash the process.
  pool.on('error', () => {});
  const { PrismaClient: PostgresPrismaClient } = await import('../generated/postgres/client.js');
  const prisma = traced(
    new PostgresPrismaClient({ adapter: new PrismaPg(pool) }) as unknown as PrismaClient,
    'postgresql',
  );
  return {
    provider,
    prisma,
    sql: postgresDriver(pool, { preparedStatements: options.postgresPreparedStatements ?? true }),
    ping: async () => {
      await prisma.$queryRawUnsafe('SELECT 1');
    },
    poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    close: async () => {
      await prisma.$disconnect();
      await pool.end();
    },
  };
}
