import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { SecretBox } from '../crypto/secret-box.js';
import { withMigrationLock } from '../db/migrate.js';
import { type KeyMaintenance, KeyStore } from '../keys/key-store.js';
import { SigningKeyRepository } from '../repositories/signing-key-repository.js';

declare module 'fastify' {
  interface FastifyInstance {
    keyStore: KeyStore;
  }
}

/**
 * Loads the signing keys, creating the first one on first boot (under the
 * database-wide lock, so instances starting together create exactly one), and
 * keeps them in step with the rotation schedule and the database while the app
 * runs (see KeyStore.maintain).
 */
export default fp(
  async function keyStore(app: FastifyInstance, options: { config: Config; now: () => number }) {
    const { config } = options;
    const store = new KeyStore(new SigningKeyRepository(app.db.prisma), SecretBox.fromConfig(config), {
      bits: config.signingKeyBits,
      accessTokenTtl: config.accessTokenTtl,
      clockLeeway: config.clockLeeway,
      keyRefreshInterval: config.keyRefreshInterval,
      rotationInterval: config.keyRotationInterval,
      publishLead: config.keyPublishLead,
      signingThreads: config.signingThreads,
      now: options.now,
      withLock: (fn) => withMigrationLock(config.databaseUrl, fn),
    });
    const recordChanges = async (changes: KeyMaintenance) => {
      if (changes.created) await app.audit.record({ type: 'signing_key_created', details: { kid: changes.created } });
      if (changes.promoted)
        await app.audit.record({ type: 'signing_key_promoted', details: { kid: changes.promoted } });
    };
    store.onMaintenance = recordChanges;
    await recordChanges(await store.maintain());
    app.log.info({ kid: store.currentKid }, 'signing key loaded');
    store.startAutoReload(config.keyRefreshInterval, (error) =>
      app.log.warn({ err: error }, 'signing key maintenance failed'),
    );
    app.decorate('keyStore', store);
    app.addHook('onClose', async () => store.close());
  },
  { name: 'key-store', dependencies: ['database', 'audit'] },
);
