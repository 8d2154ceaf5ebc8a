// kill -9 in the middle of a mixed load, then a restart on the same database:
// nothing acknowledged to a client may be lost, nothing may be duplicated,
// and the signing keys must survive.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createTestDatabase, type TestDatabase, testProviders } from '../helpers/databases.js';
import {
  claimsOf,
  HttpFailure,
  login,
  register,
  request,
  sleep,
  sql,
  startTessera,
  type TesseraProcess,
  type Tokens,
} from './helpers.js';

const PASSWORD = 'crash test password';
const REGISTER_WORKERS = 4;
const LOGIN_WORKERS = 4;
const CHAINS = 12;
/**
 * A restart of the dev CLI (tsx) takes several seconds on a busy 2-core
 * machine. The property under test is what the database kept, not how long
 * the grace window is, so the window is made long enough that the checks
 * after the restart always run inside it (production: 10 s).
 */
const ENV = { REFRESH_REUSE_GRACE: '60' };

interface Chain {
  /** The last refresh token the client received. */
  last: string;
  rotations: number;
  /** Its last request got no answer: it was in flight at the kill. */
  inFlight: boolean;
}

/** Runs `fn` over `items` with at most `limit` at once. */
async function eachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

for (const provider of testProviders()) {
  describe(`kill -9 under load, then restart (${provider})`, () => {
    let database: TestDatabase;
    const processes: TesseraProcess[] = [];
    before(async () => {
      database = await createTestDatabase(provider);
    });
    after(async () => {
      await Promise.all(processes.map((p) => p.kill()));
      await database?.drop();
    });

    it('keeps every acknowledged registration, session and rotation, duplicates nothing, keeps the keys', async (t) => {
      const first = await startTessera({ databaseUrl: database.url, env: ENV });
      processes.push(first);
      const { base } = first;

      // --- Before the load: users for the login workers and the refresh chains.
      const loginUsers = Array.from({ length: LOGIN_WORKERS }, (_, i) => `login-user-${i}`);
      const chainUsers = Array.from({ length: CHAINS }, (_, i) => `chain-user-${i}`);
      for (const username of [...loginUsers, ...chainUsers]) await register(base, username, PASSWORD);
      const chains: Chain[] = [];
      for (const username of chainUsers) {
        chains.push({ last: (await login(base, username, PASSWORD)).refresh_token, rotations: 0, inFlight: false });
      }
      const accessBefore = (await login(base, loginUsers[0]!, PASSWORD)).access_token;
      const kidsBefore = ((await request(`${base}/.well-known/jwks.json`)).body.keys as { kid: string }[])
        .map((key) => key.kid)
        .sort();
      assert.equal(
        (await request(`${base}/v1/me`, { headers: { authorization: `Bearer ${accessBefore}` } })).status,
        200,
      );

      // --- The load. A request started before the kill that got no answer is
      // "in flight": it may or may not have committed.
      let killed = false;
      const failures: string[] = [];
      const registered = new Set<string>();
      const uncertainUsers = new Set<string>();
      const sessions: Tokens[] = [];
      let inFlightAtKill = 0;
      const unexpected = (what: string, error: unknown) => {
        if (error instanceof HttpFailure && killed) {
          inFlightAtKill += 1;
          return true;
        }
        failures.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
        return false;
      };

      const registerWorker = async (worker: number) => {
        for (let i = 0; !killed; i++) {
          const username = `crash-${worker}-${i}`;
          try {
            const res = await request(`${base}/v1/users`, { json: { username, password: PASSWORD } });
            if (res.status === 201) registered.add(username);
            else failures.push(`register ${username}: ${res.status} ${res.text}`);
          } catch (error) {
            if (unexpected(`register ${username}`, error)) uncertainUsers.add(username);
            return;
          }
        }
      };
      const loginWorker = async (worker: number) => {
        const username = loginUsers[worker]!;
        while (!killed) {
          try {
            const res = await request(`${base}/oauth/token`, {
              form: { grant_type: 'password', username, password: PASSWORD },
            });
            if (res.status === 200) sessions.push(res.body);
            else failures.push(`login ${username}: ${res.status} ${res.text}`);
          } catch (error) {
            unexpected(`login ${username}`, error);
            return;
          }
        }
      };
      const chainWorker = async (chain: Chain) => {
        while (!killed) {
          try {
            const res = await request(`${base}/oauth/token`, {
              form: { grant_type: 'refresh_token', refresh_token: chain.last },
            });
            if (res.status !== 200) {
              failures.push(`refresh: ${res.status} ${res.text}`);
              return;
            }
            chain.last = res.body.refresh_token;
            chain.rotations += 1;
          } catch (error) {
            chain.inFlight = unexpected('refresh', error);
            return;
          }
        }
      };

      const load = Promise.all([
        ...Array.from({ length: REGISTER_WORKERS }, (_, w) => registerWorker(w)),
        ...Array.from({ length: LOGIN_WORKERS }, (_, w) => loginWorker(w)),
        ...chains.map((chain) => chainWorker(chain)),
      ]);
      // Once every kind of request has gone through at least once (a busy
      // machine can take a moment to warm up), kill at a random moment.
      const warm = performance.now() + 15_000;
      while (
        !(registered.size > 0 && sessions.length > 0 && chains.some((chain) => chain.rotations > 0)) &&
        failures.length === 0 &&
        performance.now() < warm
      ) {
        await sleep(10);
      }
      const delay = 300 + Math.floor(Math.random() * 500);
      await sleep(delay);
      killed = true;
      const exit = await first.kill();
      await load;
      t.diagnostic(
        `killed ${delay} ms into the load: ${registered.size} registrations, ${sessions.length} logins, ` +
          `${chains.reduce((sum, chain) => sum + chain.rotations, 0)} rotations acknowledged; ` +
          `${inFlightAtKill} requests in flight`,
      );
      assert.equal(exit.signal, 'SIGKILL');
      assert.deepEqual(failures, [], 'every request answered before the kill succeeded');
      assert.ok(registered.size > 0 && sessions.length > 0, 'the load was under way');
      assert.ok(
        chains.some((chain) => chain.rotations > 0),
        'refresh chains were rotating',
      );
      assert.ok(inFlightAtKill > 0, 'the kill hit requests in flight');

      // --- The database file as the crash left it.
      if (provider === 'sqlite') {
        const [check] = await sql<{ integrity_check: string }>(database.url, 'PRAGMA integrity_check', [], {
          readonly: true,
        });
        assert.equal(check?.integrity_check, 'ok');
      }

      // --- Restart on the same database (same port, so the same issuer).
      const second = await startTessera({ databaseUrl: database.url, port: first.port, env: ENV });
      processes.push(second);

      // The signing keys survived: same kids, and a token from before verifies.
      const kidsAfter = ((await request(`${base}/.well-known/jwks.json`)).body.keys as { kid: string }[])
        .map((key) => key.kid)
        .sort();
      assert.deepEqual(kidsAfter, kidsBefore);
      const me = await request(`${base}/v1/me`, { headers: { authorization: `Bearer ${accessBefore}` } });
      assert.equal(me.status, 200, me.text);
      const [keys] = await sql<{ n: number | string }>(database.url, 'SELECT count(*) AS n FROM signing_keys');
      assert.equal(Number(keys?.n), kidsBefore.length, 'no signing key was created or lost');

      // Every acknowledged registration: exactly one row, and the user logs in.
      const rows = await sql<{ username: string; n: number | string }>(
        database.url,
        'SELECT username, count(*) AS n FROM users GROUP BY username',
      );
      const stored = new Map(rows.map((row) => [row.username, Number(row.n)]));
      const duplicated = rows.filter((row) => Number(row.n) > 1).map((row) => row.username);
      assert.deepEqual(duplicated, [], 'no duplicated user');
      const lost = [...registered].filter((username) => stored.get(username) !== 1);
      assert.deepEqual(lost, [], 'every user whose registration got a 201 is stored');
      const cannotLogIn: string[] = [];
      await eachLimited([...registered], 8, async (username) => {
        const res = await request(`${base}/oauth/token`, {
          form: { grant_type: 'password', username, password: PASSWORD },
        });
        if (res.status !== 200) cannotLogIn.push(`${username}: ${res.status}`);
      });
      assert.deepEqual(cannotLogIn, []);
      // A client whose registration was cut off retries: it exists once either way.
      for (const username of uncertainUsers) {
        const retry = await request(`${base}/v1/users`, { json: { username, password: PASSWORD } });
        assert.ok(retry.status === 201 || retry.status === 409, `retried registration: ${retry.status} ${retry.text}`);
        await login(base, username, PASSWORD);
      }

      // Every refresh chain goes on from the last token its client received:
      // if the request in flight committed, that token is the one just
      // rotated and the grace window hands out the same successor.
      const broken: string[] = [];
      for (const [index, chain] of chains.entries()) {
        const next = await request(`${base}/oauth/token`, {
          form: { grant_type: 'refresh_token', refresh_token: chain.last },
        });
        if (next.status !== 200) {
          broken.push(`chain ${index} (in flight: ${chain.inFlight}): ${next.status} ${next.text}`);
          continue;
        }
        const after = await request(`${base}/oauth/token`, {
          form: { grant_type: 'refresh_token', refresh_token: next.body.refresh_token },
        });
        if (after.status !== 200) broken.push(`chain ${index} after resuming: ${after.status} ${after.text}`);
      }
      assert.deepEqual(broken, []);

      // No session silently lost: every acknowledged login is stored, active, and refreshes.
      const sids = sessions.map((session) => claimsOf(session.access_token).sid as string);
      const active = new Set(
        (await sql<{ id: string }>(database.url, 'SELECT id FROM sessions WHERE revoked_at IS NULL')).map(
          (row) => row.id,
        ),
      );
      assert.deepEqual(
        sids.filter((sid) => !active.has(sid)),
        [],
        'every acknowledged login has an active session',
      );
      const revoked = await sql(database.url, 'SELECT id, revoked_reason FROM sessions WHERE revoked_at IS NOT NULL');
      assert.deepEqual(revoked, [], 'the crash revoked nothing (no refresh was mistaken for a replay)');
      const dead: string[] = [];
      await eachLimited(sessions, 8, async (session) => {
        const res = await request(`${base}/oauth/token`, {
          form: { grant_type: 'refresh_token', refresh_token: session.refresh_token },
        });
        if (res.status !== 200) dead.push(`${claimsOf(session.access_token).sid}: ${res.status} ${res.text}`);
      });
      assert.deepEqual(dead, []);
    });
  });
}
