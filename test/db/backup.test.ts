import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BackupError, backupDatabase, restoreDatabase } from '../../src/db/backup.js';
import { registerAndLogin, startTestApp, type TestApp } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase, testProviders } from '../helpers/databases.js';

for (const provider of testProviders()) {
  describe(`backup and restore (${provider})`, () => {
    let live: TestApp;
    let restored: TestDatabase;
    let dir: string;
    before(async () => {
      live = await startTestApp(provider);
      dir = mkdtempSync(join(tmpdir(), 'tessera-backup-'));
    });
    after(async () => {
      await live.close();
      await restored?.drop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('backs up the live database and restores it into a fresh one where the user logs in', async () => {
      const alice = await registerAndLogin(live.app, 'backup-alice', 'a passphrase worth keeping');
      const jwksBefore = (await live.app.inject({ url: '/.well-known/jwks.json' })).json();
      const file = join(dir, 'tessera.backup');
      // The service keeps running while the backup is taken.
      const [{ bytes }, health] = await Promise.all([
        backupDatabase(live.databaseUrl, file),
        live.app.inject({ url: '/readyz' }),
      ]);
      assert.ok(bytes > 0);
      assert.equal(health.statusCode, 200);
      await assert.rejects(backupDatabase(live.databaseUrl, file), BackupError);

      restored = await createTestDatabase(provider);
      await restoreDatabase(restored.url, file);
      const copy = await startTestApp(provider, { databaseUrl: restored.url });
      try {
        const login = await copy.app.inject({
          method: 'POST',
          url: '/oauth/token',
          payload: { grant_type: 'password', username: 'backup-alice', password: 'a passphrase worth keeping' },
        });
        assert.equal(login.statusCode, 200, login.body);
        // Same signing keys: tokens issued before the backup still verify.
        assert.deepEqual((await copy.app.inject({ url: '/.well-known/jwks.json' })).json(), jwksBefore);
        const me = await copy.app.inject({ url: '/v1/me', headers: { authorization: `Bearer ${alice.access_token}` } });
        assert.equal(me.statusCode, 200);
      } finally {
        await copy.app.close();
      }
      // A restore never overwrites a database that is in use.
      await assert.rejects(restoreDatabase(restored.url, file), BackupError);
    });
  });
}
