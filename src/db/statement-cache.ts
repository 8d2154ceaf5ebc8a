import type { SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import type { ColumnDefinition, Database, Statement } from 'better-sqlite3';
import { gateTransactions, TransactionGate } from './transaction-gate.js';

/** How many distinct SQL texts keep a prepared statement (Prisma's are few; `IN (...)` lists vary). */
const CAPACITY = 256;

/**
 * Each statement's result columns, asked for on every read by the adapter and
 * rebuilt by better-sqlite3 on each call. Prisma names its columns explicitly,
 * so a statement's columns do not change while it is cached.
 */
const columnsOf = new WeakMap<Statement, ColumnDefinition[]>();

/** The part of a better-sqlite3 statement Prisma's adapter uses, bound to one call's arguments. */
class BoundStatement {
  constructor(
    private readonly statement: Statement,
    private readonly args: unknown[],
  ) {}
  get reader(): boolean {
    return this.statement.reader;
  }
  run() {
    return this.statement.run(this.args);
  }
  columns() {
    let columns = columnsOf.get(this.statement);
    if (!columns) {
      columns = this.statement.columns();
      columnsOf.set(this.statement, columns);
    }
    return columns;
  }
  raw() {
    const statement = this.statement.raw(true);
    return { all: () => statement.all(this.args) };
  }
}

/** A cached statement as `prepare()` returns it: bound per call, never permanently. */
class CachedStatement extends BoundStatement {
  constructor(private readonly cached: Statement) {
    super(cached, []);
  }
  bind(args: unknown[]) {
    return new BoundStatement(this.cached, args);
  }
}

/** better-sqlite3's own `prepare` of each connection whose `prepare` Prisma's adapter now gets from the cache. */
const nativePrepare = new WeakMap<Database, (sql: string) => Statement>();

/** A plain better-sqlite3 statement on `db`, whether or not its `prepare` is the cache's. */
export function prepareStatement(db: Database, sql: string): Statement {
  return (nativePrepare.get(db) ?? db.prepare.bind(db))(sql);
}

/**
 * Keeps the prepared statements of a better-sqlite3 connection. Prisma's
 * adapter prepares every query afresh (SQLite parses and plans it each time:
 * a few per cent of a refresh's CPU) and binds it permanently, so the cache
 * hands out per-call bindings of one statement instead. Statements run to
 * completion synchronously, so one statement is never used by two calls at once.
 */
function cacheStatements(db: Database): void {
  const prepare = db.prepare.bind(db);
  nativePrepare.set(db, prepare);
  const cache = new Map<string, Statement>();
  (db as unknown as { prepare: (sql: string) => CachedStatement }).prepare = (sql: string) => {
    let statement = cache.get(sql);
    if (statement) {
      // Most recently used last, so the oldest is evicted first.
      cache.delete(sql);
    } else {
      statement = prepare(sql);
      if (cache.size >= CAPACITY) cache.delete(cache.keys().next().value as string);
    }
    cache.set(sql, statement);
    return new CachedStatement(statement);
  };
}

/**
 * Wraps @prisma/adapter-better-sqlite3's factory so that each connection it
 * opens caches its statements (see {@link cacheStatements}), and hands each
 * (non-shadow) connection to `onConnect`, for the statements tessera runs on
 * it directly (src/db/sql-driver.ts), with the {@link TransactionGate} that
 * holds the connection's other queries back while a transaction is open. The
 * adapter keeps its better-sqlite3 connection in a `client` field; if a later
 * version does not, connections are left as they are (the gate still applies)
 * and `onConnect` is not called.
 */
export function withStatementCache(
  inner: SqlMigrationAwareDriverAdapterFactory,
  onConnect?: (connection: Database, gate: TransactionGate) => void,
): SqlMigrationAwareDriverAdapterFactory {
  const patch = <T>(adapter: T): Database | null => {
    const client = (adapter as { client?: Partial<Database> }).client;
    if (client && typeof client.prepare === 'function' && typeof client.exec === 'function') {
      cacheStatements(client as Database);
      return client as Database;
    }
    return null;
  };
  return {
    provider: inner.provider,
    adapterName: inner.adapterName,
    connect: async () => {
      const adapter = await inner.connect();
      const connection = patch(adapter);
      const gate = new TransactionGate();
      gateTransactions(adapter, gate, connection);
      if (connection) onConnect?.(connection, gate);
      return adapter;
    },
    connectToShadowDb: async () => {
      const adapter = await inner.connectToShadowDb();
      patch(adapter);
      return adapter;
    },
  };
}
