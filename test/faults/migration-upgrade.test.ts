// An upgrade: a database built by the previous migration set, with users,
// sessions and a signing key in it, gets the newest migration(s), keeps every
// row as it was, and the app works on it at once: nobody is logged out.
//
// The rows are written by the real app (on a scratch database with the full
// schema) and copied column by column into the older schema with plain SQL:
// an app built from this source tree would apply every migration first, so
// it cannot write into the older schema itself.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { decodeProtectedHeader } from 'jose';
import { applyMigrations, migrationSource } from '../../src/db/migrate.js';
import { registerAndLogin, startTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type Provider, type TestDatabase, testProviders } from '../helpers/databases.js';
import { claimsOf, projectRoot, sql } from './helpers.js';

/** The tables with data worth keeping, parents first, with their primary keys. */
const TABLES = [
  { name: 'users', key: 'id' },
  { name: 'sessions', key: 'id' },
  { name: 'signing_keys', key: 'kid' },
  { name: 'audit_events', key: 'id' },
];

interface Column {
  name: string;
  required: boolean;
}

async function columnsOf(provider: Provider, databaseUrl: string, table: string): Promise<Column[]> {
  if (provider === 'sqlite') {
    const rows = await sql<{ name: string; notnull: number; dflt_value: unknown; pk: number }>(
      databaseUrl,
      `PRAGMA table_info("${table}")`,
    );
    return rows.map((row) => ({ name: row.name, required: row.notnull === 1 && row.dflt_value === null }));
  }
  const rows = await sql<{ column_name: string; is_nullable: string; column_default: unknown }>(
    databaseUrl,
    `SELECT column_name, is_nullable, column_default FROM information_schema.columns
     WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position`,
    [table],
  );
  return rows.map((row) => ({
    name: row.column_name,
    required: row.is_nullable === 'NO' && row.column_default === null,
  }));
}

/** Rows of `table`, only `columns`, in key order; values as comparable JSON. */
async function rowsOf(databaseUrl: string, table: { name: string; key: string }, columns: string[]) {
  const rows = await sql(
    databaseUrl,
    `SELECT ${columns.map((c) => `"${c}"`).join(', ')} FROM "${table.name}" ORDER BY "${table.key}"`,
  );
  return JSON.parse(JSON.stringify(rows)) as Record<string, unknown>[];
}

/**
 * Copies every row of `table` from `from` (full schema) into `to` (older
 * schema), in the columns the older schema has. A column only the older
 * schema has must be optional, or the test needs to be told what to put there.
 */
async function copyTable(provider: Provider, from: string, to: string, table: { name: string; key: string }) {
  const target = await columnsOf(provider, to, table.name);
  if (target.length === 0) return null;
  const source = new Set((await columnsOf(provider, from, table.name)).map((column) => column.name));
  const missing = target.filter((column) => !source.has(column.name) && column.required);
  assert.deepEqual(missing, [], `${table.name}: columns of the previous schema that the current one dropped`);
  const columns = target.filter((column) => source.has(column.name)).map((column) => column.name);
  const rows = await sql(from, `SELECT ${columns.map((c) => `"${c}"`).join(', ')} FROM "${table.name}"`);
  const placeholders = columns.map((_, i) => (provider === 'sqlite' ? '?' : `$${i + 1}`)).join(', ');
  for (const row of rows) {
    await sql(
      to,
      `INSERT INTO "${table.name}" (${columns.map((c) => `"${c}"`).join(', ')}) VALUES (${placeholders})`,
      columns.map((column) => row[column]),
    );
  }
  return { columns, count: rows.length };
}

for (const provider of testProviders()) {
  describe(`upgrading a ${provider} database from the previous migration set`, () => {
    const migrations = migrationSource(provider).migrations.map((migration) => migration.name);
    const previous = migrations.slice(0, -1);
    const newest = migrations.slice(previous.length);
    let prismaRoot: string;
    let old: TestDatabase;
    let scratch: TestApp;
    let upgraded: TestApp | undefined;

    before(async () => {
      // prisma/<provider>/ as it was before the newest migration was added.
      prismaRoot = mkdtempSync(join(tmpdir(), 'tessera-previous-prisma-'));
      const { migrationsDir } = migrationSource(provider);
      cpSync(join(projectRoot, 'prisma', provider), join(prismaRoot, provider), {
        recursive: true,
        filter: (path) => {
          const inside = relative(migrationsDir, path).split(sep)[0];
          return !newest.includes(inside ?? '');
        },
      });
      old = await createTestDatabase(provider);
      scratch = await startTestApp(provider);
    });
    after(async () => {
      await upgraded?.app.close();
      await scratch?.close();
      await old?.drop();
      if (prismaRoot) rmSync(prismaRoot, { recursive: true, force: true });
    });

    it('keeps every row, then the app works on it without logging anyone out', {
      skip: previous.length === 0,
    }, async () => {
      const { applied: appliedBefore } = await applyMigrations({ databaseUrl: old.url, prismaRoot });
      assert.deepEqual(appliedBefore, previous, 'the previous migration set');

      // Data as the app writes it: users, sessions (one rotated, one logged out), the key, audit events.
      const alice = await registerAndLogin(scratch.app, 'alice', 'alice password 1');
      const rotated = await scratch.app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'refresh_token', refresh_token: alice.refresh_token },
      });
      assert.equal(rotated.statusCode, 200);
      const aliceTokens = rotated.json() as { access_token: string; refresh_token: string };
      const bob = await registerAndLogin(scratch.app, 'Bob', 'bob password 12');
      const carol = await registerAndLogin(scratch.app, 'carol', 'carol password 1');
      const logout = await scratch.app.inject({
        method: 'POST',
        url: '/oauth/revoke',
        payload: { token: carol.refresh_token },
      });
      assert.equal(logout.statusCode, 200);
      const kid = decodeProtectedHeader(alice.access_token).kid;

      const copied: Record<string, { columns: string[]; count: number }> = {};
      for (const table of TABLES) {
        const result = await copyTable(provider, scratch.databaseUrl, old.url, table);
        if (result) copied[table.name] = result;
      }
      assert.equal(copied.users?.count, 3);
      assert.equal(copied.sessions?.count, 3);
      assert.equal(copied.signing_keys?.count, 1);
      const snapshot: Record<string, Record<string, unknown>[]> = {};
      for (const table of TABLES) {
        const columns = copied[table.name]?.columns;
        if (columns) snapshot[table.name] = await rowsOf(old.url, table, columns);
      }

      // The upgrade.
      const { applied } = await applyMigrations({ databaseUrl: old.url });
      assert.deepEqual(applied, newest);
      const recorded = await sql<{ migration_name: string; finished_at: unknown; rolled_back_at: unknown }>(
        old.url,
        'SELECT migration_name, finished_at, rolled_back_at FROM _prisma_migrations ORDER BY migration_name',
      );
      assert.deepEqual(
        recorded.map((row) => row.migration_name),
        migrations,
      );
      assert.ok(recorded.every((row) => row.finished_at !== null && row.rolled_back_at === null));
      for (const table of TABLES) {
        const columns = copied[table.name]?.columns;
        if (columns) {
          assert.deepEqual(await rowsOf(old.url, table, columns), snapshot[table.name], `${table.name} unchanged`);
        }
      }
      if (provider === 'sqlite') {
        const [check] = await sql<{ integrity_check: string }>(old.url, 'PRAGMA integrity_check');
        assert.equal(check?.integrity_check, 'ok');
      }

      // The app on the upgraded database: same key, every session goes on.
      upgraded = await startTestApp(provider, { databaseUrl: old.url });
      const { app } = upgraded;
      const jwks = (await app.inject({ url: '/.well-known/jwks.json' })).json() as { keys: { kid: string }[] };
      assert.deepEqual(
        jwks.keys.map((key) => key.kid),
        [kid],
        'the signing key survived, no new one',
      );
      const me = await app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${aliceTokens.access_token}` } });
      assert.equal(me.statusCode, 200, me.body);
      assert.equal(me.json().username, 'alice');
      for (const token of [aliceTokens.refresh_token, bob.refresh_token]) {
        const refreshed = await app.inject({
          method: 'POST',
          url: '/oauth/token',
          payload: { grant_type: 'refresh_token', refresh_token: token },
        });
        assert.equal(refreshed.statusCode, 200, refreshed.body);
      }
      const dead = await app.inject({
        method: 'POST',
        url: '/oauth/token',
        payload: { grant_type: 'refresh_token', refresh_token: carol.refresh_token },
      });
      assert.equal(dead.json().error, 'invalid_grant', 'a logged-out session stays logged out');
      for (const [username, password] of [
        ['alice', 'alice password 1'],
        ['bob', 'bob password 12'],
        ['carol', 'carol password 1'],
      ] as const) {
        const login = await app.inject({
          method: 'POST',
          url: '/oauth/token',
          payload: { grant_type: 'password', username, password },
        });
        assert.equal(login.statusCode, 200, `${username}: ${login.body}`);
      }
      const sessions = await app.inject({
        url: '/v1/sessions',
        headers: { authorization: `Bearer ${aliceTokens.access_token}` },
      });
      assert.ok(
        sessions.json().sessions.some((session: { id: string }) => session.id === claimsOf(alice.access_token).sid),
      );
      const taken = await app.inject({
        method: 'POST',
        url: '/v1/users',
        payload: { username: 'ALICE', password: 'another password' },
      });
      assert.equal(taken.statusCode, 409, 'the username index survived');
    });
  });
}
