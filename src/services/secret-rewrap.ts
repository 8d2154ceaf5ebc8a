import type { SecretBox } from '../crypto/secret-box.js';
import type { SessionSecretRepository } from '../repositories/session-secret-repository.js';

const BATCH = 500;

/**
 * Re-encrypts every session's refresh secret under the box's current
 * key-encryption secret, in batches, so it runs on a live database without
 * long locks. Secrets already sealed under the current secret are skipped, so
 * it can be re-run. Returns how many changed.
 */
export async function rewrapSessionSecrets(repository: SessionSecretRepository, box: SecretBox): Promise<number> {
  let changed = 0;
  let after = '';
  for (;;) {
    const batch = await repository.batchAfter(after, BATCH);
    for (const session of batch) {
      if (box.isCurrent(session.secret)) continue;
      const resealed = box.reseal(session.secret, 'session-secret', session.id);
      if (await repository.replaceSecret(session.id, session.secret, resealed)) changed += 1;
    }
    const last = batch.at(-1);
    if (!last || batch.length < BATCH) return changed;
    after = last.id;
  }
}
