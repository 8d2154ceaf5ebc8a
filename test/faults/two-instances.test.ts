// Two tessera processes behind one PostgreSQL, started at the same moment on
// an empty database. (20 concurrent refreshes of one token split across two
// instances sharing one successor: test/e2e/concurrent-refresh.test.ts,
// "two instances sharing one PostgreSQL, over real HTTP".)
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { migrationSource } from '../../src/db/migrate.js';
import { registerAndLogin, startTestApp, type TestApp, TestClock } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase, testProviders } from '../helpers/databases.js';
import { freePort } from '../helpers/http.js';
import {
  claimsOf,
  killAllTessera,
  login,
  register,
  request,
  sleep,
  sql,
  startTessera,
  type TesseraProcess,
  type Tokens,
} from './helpers.js';

const PASSWORD = 'two instances password';

/** The advisory-lock key of tessera's start-up work (src/db/migrate.ts). */
const STARTUP_LOCK_KEY = 0x74657373;

// Regression guards: a blocking pg_advisory_lock() wait once deadlocked against the
// CREATE INDEX CONCURRENTLY migration, and Fastify's default 10 s plugin timeout once
// failed an instance waiting for the start-up lock.

async function checkStartupWork(databaseUrl: string, instances: TesseraProcess[]) {
  const expected = migrationSource('postgres').migrations.map((migration) => migration.name);
  const rows = await sql<{ migration_name: string; finished_at: Date | null; rolled_back_at: Date | null }>(
    databaseUrl,
    'SELECT migration_name, finished_at, rolled_back_at FROM _prisma_migrations ORDER BY migration_name',
  );
  assert.deepEqual(
    rows.map((row) => row.migration_name),
    expected,
    'one row per migration folder, each once',
  );
  assert.ok(rows.every((row) => row.finished_at !== null && row.rolled_back_at === null));
  const [keys] = await sql<{ n: string }>(databaseUrl, 'SELECT count(*) AS n FROM signing_keys');
  assert.equal(Number(keys?.n), 1, 'exactly one signing key');
  const documents = await Promise.all(instances.map((p) => request(`${p.base}/.well-known/jwks.json`)));
  assert.equal(documents[0]?.status, 200);
  assert.equal(documents[0]?.body.keys.length, 1);
  for (const document of documents) assert.deepEqual(document.body, documents[0]?.body, 'both publish the same JWKS');
}

if (testProviders().includes('postgres')) {
  describe('two processes behind one PostgreSQL', () => {
    // One issuer for both, as behind a load balancer: a token of either verifies on the other.
    const env = { ISSUER: 'http://tessera.test' };
    const databases: TestDatabase[] = [];
    const processes: TesseraProcess[] = [];
    /** The two instances the later tests use: started together if that worked, else one after the other. */
    let pair: { url: string; a: TesseraProcess; b: TesseraProcess } | undefined;
    /** An instance already running on a migrated database, to pair with. */
    let spare: { url: string; a: TesseraProcess } | undefined;
    const newDatabase = async () => {
      const database = await createTestDatabase('postgres');
      databases.push(database);
      return database;
    };
    const start = async (databaseUrl: string) => {
      const port = await freePort();
      const p = startTessera({ databaseUrl, port, env, readyTimeoutMs: 45_000 });
      void p.then((started) => processes.push(started)).catch(() => {});
      return p;
    };
    const instances = async (): Promise<[TesseraProcess, TesseraProcess]> => {
      if (!pair) {
        if (!spare) {
          const database = await newDatabase();
          spare = { url: database.url, a: await start(database.url) };
        }
        pair = { url: spare.url, a: spare.a, b: await start(spare.url) };
      }
      return [pair.a, pair.b];
    };
    after(async () => {
      await Promise.all(processes.map((p) => p.kill()));
      await killAllTessera();
      for (const database of databases) await database.drop();
    });

    it('started at the same moment on an empty database: both serve; migrations applied once, one signing key', async () => {
      const database = await newDatabase();
      const started = await Promise.allSettled([start(database.url), start(database.url)]);
      const failed = started.flatMap((result) => (result.status === 'rejected' ? [String(result.reason)] : []));
      if (failed.length > 0) {
        for (const result of started) if (result.status === 'fulfilled') await result.value.kill();
        assert.fail(`not both started:\n${failed.join('\n').slice(0, 2000)}`);
      }
      const [first, second] = started.map((result) => (result as PromiseFulfilledResult<TesseraProcess>).value);
      await checkStartupWork(database.url, [first!, second!]);
      pair = { url: database.url, a: first!, b: second! };
    });

    it('a second instance that waits longer than 10 s for the start-up lock (held as by a long migration) still starts', async () => {
      const database = await newDatabase();
      const first = await start(database.url);
      if (!pair) spare = { url: database.url, a: first };
      const holder = new pg.Client({ connectionString: database.url });
      await holder.connect();
      try {
        await holder.query('SELECT pg_advisory_lock($1)', [STARTUP_LOCK_KEY]);
        const starting = start(database.url);
        starting.catch(() => {});
        // Once the new instance is queued on the lock, keep it waiting past 10 s.
        const deadline = performance.now() + 30_000;
        for (;;) {
          const [waiting] = await sql<{ n: string }>(
            database.url,
            // The instance polls pg_try_advisory_lock (it never blocks inside the database).
            "SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE 'SELECT pg_try_advisory_lock%' AND pid <> pg_backend_pid()",
          );
          if (Number(waiting?.n) > 0) break;
          assert.ok(performance.now() < deadline, 'the instance never asked for the start-up lock');
          await sleep(100);
        }
        await Promise.race([starting, sleep(10_500)]);
        await holder.query('SELECT pg_advisory_unlock($1)', [STARTUP_LOCK_KEY]);
        const second = await starting;
        assert.equal((await request(`${second.base}/readyz`)).status, 200);
        if (!pair) pair = { url: database.url, a: first, b: second };
      } finally {
        await holder.end().catch(() => {});
      }
    });

    it('two instances (started one after the other if need be): one set of migrations, one signing key', async () => {
      const both = await instances();
      await checkStartupWork(pair!.url, both);
    });

    it('a user registered on one logs in on the other, and its tokens work on both', async () => {
      const [first, second] = await instances();
      await register(first.base, 'ines', PASSWORD);
      const tokens = await login(second.base, 'ines', PASSWORD);
      for (const p of [first, second]) {
        const me = await request(`${p.base}/v1/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
        assert.equal(me.status, 200, me.text);
        assert.equal(me.body.username, 'ines');
      }
      const refreshed = await request(`${first.base}/oauth/token`, {
        form: { grant_type: 'refresh_token', refresh_token: tokens.refresh_token },
      });
      assert.equal(refreshed.status, 200, refreshed.text);
    });

    const assertDead = async (tokens: Tokens, on: TesseraProcess[]) => {
      for (const p of on) {
        const me = await request(`${p.base}/v1/me`, { headers: { authorization: `Bearer ${tokens.access_token}` } });
        assert.equal(me.status, 401, `${p.base} /v1/me: ${me.status} ${me.text}`);
      }
      const refresh = await request(`${on[0]!.base}/oauth/token`, {
        form: { grant_type: 'refresh_token', refresh_token: tokens.refresh_token },
      });
      assert.equal(refresh.status, 400, refresh.text);
      assert.equal(refresh.body.error, 'invalid_grant');
    };

    it('a session logged out on one (RFC 7009) is dead on the other at once', async () => {
      const [first, second] = await instances();
      await register(second.base, 'jonas', PASSWORD);
      const tokens = await login(first.base, 'jonas', PASSWORD);
      // The other instance has seen this token valid.
      const before = await request(`${second.base}/v1/me`, {
        headers: { authorization: `Bearer ${tokens.access_token}` },
      });
      assert.equal(before.status, 200);
      const revoke = await request(`${first.base}/oauth/revoke`, { form: { token: tokens.refresh_token } });
      assert.equal(revoke.status, 200);
      await assertDead(tokens, [second, first]);
    });

    it('a session ended with DELETE /v1/sessions/:id on one is dead on the other at once', async () => {
      const [first, second] = await instances();
      await register(first.base, 'karin', PASSWORD);
      const laptop = await login(first.base, 'karin', PASSWORD);
      const phone = await login(second.base, 'karin', PASSWORD);
      const warm = await request(`${second.base}/v1/me`, {
        headers: { authorization: `Bearer ${phone.access_token}` },
      });
      assert.equal(warm.status, 200);
      const ended = await request(`${first.base}/v1/sessions/${claimsOf(phone.access_token).sid}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${laptop.access_token}` },
      });
      assert.equal(ended.status, 204, ended.text);
      await assertDead(phone, [second, first]);
      // The session it was ended from lives on, on both.
      for (const p of [first, second]) {
        const me = await request(`${p.base}/v1/me`, { headers: { authorization: `Bearer ${laptop.access_token}` } });
        assert.equal(me.status, 200);
      }
    });
  });

  describe('reuse after the grace window, across two instances (shared controlled clock)', () => {
    const clock = new TestClock();
    let first: TestApp;
    let second: TestApp;
    before(async () => {
      first = await startTestApp('postgres', { now: clock.now });
      second = await startTestApp('postgres', { now: clock.now, databaseUrl: first.databaseUrl });
    });
    after(async () => {
      await second?.app.close();
      await first?.close();
    });

    it('within the window both hand out the same successor; after it, a replay on one kills the family on both', async () => {
      const user = await registerAndLogin(first.app);
      const refresh = (app: TestApp, token: string) =>
        app.app.inject({
          method: 'POST',
          url: '/oauth/token',
          payload: { grant_type: 'refresh_token', refresh_token: token },
        });
      const rotated = await refresh(first, user.refresh_token);
      assert.equal(rotated.statusCode, 200);
      const successor = rotated.json().refresh_token as string;
      // Inside the window the other instance agrees on the successor.
      clock.advance(first.config.refreshReuseGrace - 1);
      const again = await refresh(second, user.refresh_token);
      assert.equal(again.statusCode, 200);
      assert.equal(again.json().refresh_token, successor);

      // Past the window, replaying the old token on the second instance is reuse.
      clock.advance(2);
      const replay = await refresh(second, user.refresh_token);
      assert.equal(replay.statusCode, 400);
      assert.equal(replay.json().error, 'invalid_grant');
      for (const instance of [first, second]) {
        const next = await refresh(instance, successor);
        assert.equal(next.json().error, 'invalid_grant', 'the successor died with the family');
        const me = await instance.app.inject({
          url: '/v1/me',
          headers: { authorization: `Bearer ${rotated.json().access_token}` },
        });
        assert.equal(me.statusCode, 401, "the family's access tokens died too");
      }
      const [row] = await sql<{ revoked_reason: string }>(
        first.databaseUrl,
        'SELECT revoked_reason FROM sessions WHERE id = $1',
        [claimsOf(user.access_token).sid],
      );
      assert.equal(row?.revoked_reason, 'refresh_token_reuse');
    });
  });
}
