import { randomBytes, randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import Database from 'better-sqlite3';
import pg from 'pg';

/**
 * Filler sessions, written straight into the `sessions` table (see
 * prisma/sqlite/schema.prisma) so that refresh latency can be compared at
 * different table sizes. They belong to real users but are never refreshed:
 * the `secret` column only needs the shape of a sealed value
 * (`v1.<secret id>.<iv>.<ciphertext+tag>`), not one that opens. All are
 * active (created in the last 10 days, neither revoked nor expired), so the
 * service's pruner leaves them alone and every row counts.
 */
export interface SeedResult {
  inserted: number;
  seconds: number;
  /** Rows in `sessions` afterwards. */
  total: number;
  /** Database size on disk afterwards, MiB (SQLite file, or pg_database_size). */
  sizeMiB: number;
}

const DAY = 86_400_000;
const USER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0';

/** Prisma's SQLite adapter stores DateTime as ISO 8601 text with an explicit offset. */
const sqliteDate = (ms: number) => new Date(ms).toISOString().replace('Z', '+00:00');

export function sqliteFile(databaseUrl: string): string {
  return databaseUrl.replace(/^file:/, '');
}

export function countSqliteSessions(file: string): number {
  const db = new Database(file, { readonly: true, timeout: 30_000 });
  try {
    return (db.prepare('SELECT count(*) AS n FROM sessions').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** Inserts `count` sessions with one prepared INSERT in one transaction. */
export function seedSqliteSessions(file: string, userIds: string[], count: number): SeedResult {
  const started = performance.now();
  const db = new Database(file, { timeout: 30_000 });
  try {
    db.pragma('cache_size = -262144');
    const insert = db.prepare(
      `INSERT INTO sessions (id, user_id, secret, generation, created_at, last_rotated_at, refresh_expires_at,
         expires_at, revoked_at, revoked_reason, user_agent, ip_address)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const now = Date.now();
    const fill = db.transaction((rows: number) => {
      // Ids sorted before insertion: the same random UUIDs, but the primary-key index grows at its end.
      const ids = Array.from({ length: rows }, () => randomUUID()).sort();
      const batch = 10_000;
      for (let start = 0; start < rows; start += batch) {
        const random = randomBytes(60 * batch);
        for (let i = start; i < Math.min(rows, start + batch); i += 1) {
          const offset = (i - start) * 60;
          const created = now - Math.floor(Math.random() * 10 * DAY);
          const rotated = created + Math.floor(Math.random() * (now - created));
          insert.run(
            ids[i],
            userIds[i % userIds.length],
            `v1.seedfill.${random.subarray(offset, offset + 12).toString('base64url')}.${random.subarray(offset + 12, offset + 60).toString('base64url')}`,
            i % 50,
            sqliteDate(created),
            sqliteDate(rotated),
            sqliteDate(rotated + 14 * DAY),
            sqliteDate(created + 30 * DAY),
            null,
            null,
            USER_AGENT,
            '127.0.0.1',
          );
        }
      }
    });
    fill(count);
    db.pragma('wal_checkpoint(TRUNCATE)');
    const total = (db.prepare('SELECT count(*) AS n FROM sessions').get() as { n: number }).n;
    return {
      inserted: count,
      seconds: (performance.now() - started) / 1000,
      total,
      sizeMiB: statSync(file).size / 2 ** 20,
    };
  } finally {
    db.close();
  }
}

async function withPostgres<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

export function countPostgresSessions(url: string): Promise<number> {
  return withPostgres(url, async (client) => {
    const { rows } = await client.query('SELECT count(*)::int AS n FROM sessions');
    return (rows[0] as { n: number }).n;
  });
}

/** Inserts `count` sessions with one INSERT … SELECT over generate_series, then ANALYZE. */
export function seedPostgresSessions(url: string, userIds: string[], count: number): Promise<SeedResult> {
  return withPostgres(url, async (client) => {
    const started = performance.now();
    // Filler: no need to wait for the WAL flush of this one big commit.
    await client.query('SET synchronous_commit = off');
    // Sorted by id, so the primary-key index grows at its end; one md5 per row makes the filler secret.
    await client.query(
      `INSERT INTO sessions (id, user_id, secret, generation, created_at, last_rotated_at, refresh_expires_at,
         expires_at, revoked_at, revoked_reason, user_agent, ip_address)
       SELECT id, ($1::text[])[1 + g % cardinality($1::text[])],
              'v1.seedfill.' || substr(h, 1, 16) || '.' || h || h,
              g % 50, created, rotated, rotated + interval '14 days', created + interval '30 days',
              NULL, NULL, $3, '127.0.0.1'
       FROM (SELECT g, gen_random_uuid()::text AS id, md5(g::text || random()::text) AS h, created,
                    created + random() * (now() - created) AS rotated
             FROM (SELECT g, now() - random() * interval '10 days' AS created
                   FROM generate_series(1, $2::int) AS g) AS c) AS s
       ORDER BY id`,
      [userIds, count, USER_AGENT],
    );
    await client.query('ANALYZE sessions');
    const { rows } = await client.query(
      'SELECT (SELECT count(*) FROM sessions)::int AS n, pg_database_size(current_database())::bigint AS size',
    );
    const row = rows[0] as { n: number; size: string };
    return {
      inserted: count,
      seconds: (performance.now() - started) / 1000,
      total: row.n,
      sizeMiB: Number(row.size) / 2 ** 20,
    };
  });
}
