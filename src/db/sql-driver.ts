import type { Database as SqliteConnection, Statement } from 'better-sqlite3';
import pg from 'pg';
import { DatabaseUnavailableError } from '../errors.js';
import { prepareStatement } from './statement-cache.js';
import type { TransactionGate } from './transaction-gate.js';

/** A value bound to a statement parameter. */
export type SqlParam = string | number | Date | null;

/**
 * Statements run straight through the database driver, for the few queries on
 * the hot path of every refresh. The Prisma client spends ~50 µs of event-loop
 * CPU on each query it runs, raw ones included (argument mapping, its query
 * interpreter, result mapping); the driver itself, a few. Only repositories
 * use it. SQL is written once, in the dialect common to SQLite and PostgreSQL,
 * with `$1, $2, …` placeholders, each used once and in order.
 *
 * Values are read and written exactly as the Prisma client stores them, so
 * rows written here and through Prisma are interchangeable: DateTime columns
 * come back as `Date` on both databases, and `Date` parameters are stored as
 * Prisma stores them (its ISO 8601 text on SQLite, its zone-less UTC text on
 * PostgreSQL), in any process or database time zone.
 */
export interface SqlDriver {
  /** OpenTelemetry's `db.system` for this database, as Prisma's spans carry it. */
  readonly system: 'sqlite' | 'postgresql';
  /** The rows of a query, keyed by column name (or alias). */
  query<T>(text: string, params: readonly SqlParam[]): Promise<T[]>;
  /** Runs an INSERT, UPDATE or DELETE; resolves to the number of rows it changed. */
  execute(text: string, params: readonly SqlParam[]): Promise<number>;
}

/** `$1, $2, …` to SQLite's positional `?`; refuses placeholders out of order. */
function positional(text: string): string {
  let next = 1;
  return text.replace(/\$(\d+)/g, (_, index: string) => {
    if (Number(index) !== next) throw new Error(`SQL placeholders must be $1, $2, … each once, in order: ${text}`);
    next += 1;
    return '?';
  });
}

/** Prisma's SQLite DateTime text (its adapter's default `iso8601` format). */
const sqliteParam = (value: SqlParam) => (value instanceof Date ? value.toISOString().replace('Z', '+00:00') : value);

/**
 * A SQLite DateTime: Prisma's ISO 8601 text, or SQLite's own `CURRENT_TIMESTAMP`
 * form (`YYYY-MM-DD HH:MM:SS`, UTC, which `Date` would read as local time).
 */
function sqliteDate(value: string): Date {
  return new Date(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?$/.test(value) ? `${value.replace(' ', 'T')}Z` : value);
}

/** The names of a statement's DateTime columns (Prisma declares them `DATETIME`). */
function dateColumns(statement: Statement): string[] {
  return statement
    .columns()
    .filter((column) => column.type?.toUpperCase() === 'DATETIME')
    .map((column) => column.name);
}

/**
 * The driver over the better-sqlite3 connection that Prisma's adapter opened
 * (`connection()` answers the current one), so both share one connection and
 * one view of the data. Statements are prepared once per connection and SQL
 * text. better-sqlite3 runs them synchronously: one never interleaves with
 * another, exactly as for Prisma's own queries on that connection. Like those,
 * they wait behind the connection's {@link TransactionGate} while a Prisma
 * transaction is open, so that they never run inside it.
 */
export function sqliteDriver(
  connection: () => SqliteConnection,
  gate: () => TransactionGate | undefined = () => undefined,
): SqlDriver {
  const prepared = new WeakMap<SqliteConnection, Map<string, { statement: Statement; dates: string[] }>>();
  const prepare = (text: string) => {
    const db = connection();
    // Closed at shutdown; Prisma reopens lazily, on its own next query.
    if (!db.open) throw new DatabaseUnavailableError('the SQLite connection is closed');
    let statements = prepared.get(db);
    if (!statements) {
      statements = new Map();
      prepared.set(db, statements);
    }
    let entry = statements.get(text);
    if (!entry) {
      const statement = prepareStatement(db, positional(text));
      entry = { statement, dates: statement.reader ? dateColumns(statement) : [] };
      statements.set(text, entry);
    }
    return entry;
  };
  // At once when no transaction is open (the gate's fast path), else after it ends.
  const gated = <T>(work: () => Promise<T>): Promise<T> => gate()?.run(work) ?? work();
  return {
    system: 'sqlite',
    query: <T>(text: string, params: readonly SqlParam[]) =>
      gated(async () => {
        const { statement, dates } = prepare(text);
        const rows = statement.all(params.map(sqliteParam)) as Record<string, unknown>[];
        for (const row of rows) {
          for (const name of dates) {
            const value = row[name];
            if (typeof value === 'string') row[name] = sqliteDate(value);
            else if (typeof value === 'number') row[name] = new Date(value);
          }
        }
        return rows as T[];
      }),
    execute: (text: string, params: readonly SqlParam[]) =>
      gated(async () => prepare(text).statement.run(params.map(sqliteParam)).changes),
  };
}

/** PostgreSQL's `timestamptz`, the type of every Prisma DateTime column on PostgreSQL. */
const TIMESTAMPTZ_OID = 1184;

/**
 * Dates as @prisma/adapter-pg binds them: the UTC wall-clock time with no
 * offset, which PostgreSQL reads in the session's TimeZone. Binding the true
 * instant instead would disagree with every row Prisma wrote whenever the
 * database's TimeZone is not UTC.
 */
function pgParam(value: SqlParam): SqlParam {
  return value instanceof Date ? value.toISOString().replace('T', ' ').replace('Z', '') : value;
}

/** `timestamptz` read back as the adapter reads it: the wall-clock time as UTC, whatever offset comes with it. */
const pgTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === TIMESTAMPTZ_OID
      ? (text: string) => new Date(text.replace(' ', 'T').replace(/[+-]\d{2}(:\d{2})?$/, '+00:00'))
      : pg.types.getTypeParser(oid, format ?? 'text')) as typeof pg.types.getTypeParser,
};

/** The driver over tessera's PostgreSQL pool (the one the Prisma adapter also uses). */
export function postgresDriver(pool: pg.Pool, { preparedStatements = true } = {}): SqlDriver {
  // Named statements: each connection parses and plans a statement once, not
  // on every call. A pooler in transaction mode may not keep them: then off.
  const names = new Map<string, string>();
  const nameOf = (text: string) => {
    let name = names.get(text);
    if (!name) {
      name = `tessera_${names.size + 1}`;
      names.set(text, name);
    }
    return name;
  };
  const run = (text: string, params: readonly SqlParam[]) =>
    pool.query({
      ...(preparedStatements ? { name: nameOf(text) } : {}),
      text,
      values: params.map(pgParam),
      types: pgTypes,
    });
  return {
    system: 'postgresql',
    async query<T>(text: string, params: readonly SqlParam[]): Promise<T[]> {
      return (await run(text, params)).rows as T[];
    },
    async execute(text: string, params: readonly SqlParam[]): Promise<number> {
      return (await run(text, params)).rowCount ?? 0;
    },
  };
}
