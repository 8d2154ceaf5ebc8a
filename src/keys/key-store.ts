import { createHash, createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { calculateJwkThumbprint, type JWK, type JWTPayload } from 'jose';
import type { SecretBox } from '../crypto/secret-box.js';
import type { SigningKeyRecord, SigningKeyRepository } from '../repositories/signing-key-repository.js';
import { inSpan } from '../telemetry/tracing.js';
import { Signer } from './signer.js';

const generateRsaKeyPair = promisify(generateKeyPair);

export const SIGNING_ALGORITHM = 'RS256';
/** RFC 9068 §2.1: access tokens are typed `at+jwt`. */
export const ACCESS_TOKEN_TYPE = 'at+jwt';
/** Smallest RSA modulus accepted for import (RFC 7518 §3.3). */
const MIN_RSA_BITS = 2048;

/** A public key as published in the JWKS. */
export interface PublicSigningKey {
  kid: string;
  status: SigningKeyRecord['status'];
  jwk: JWK;
  key: KeyObject;
  /** SPKI PEM, the form @fastify/jwt's verifier takes. */
  pem: string;
}

/** Options for {@link KeyStore}; durations in seconds. */
export interface KeyStoreOptions {
  bits: 2048 | 3072 | 4096;
  /** Access-token lifetime: a retired key stays published this long (plus leeway and one reload interval). */
  accessTokenTtl: number;
  clockLeeway: number;
  /** How often every instance re-reads the key set; instances may sign with a just-retired key this long. */
  keyRefreshInterval: number;
  /** Seconds between scheduled rotations; 0 = no scheduled rotation. */
  rotationInterval: number;
  /** Seconds a `next` key is published before it signs. */
  publishLead: number;
  /** Threads that compute signatures (default 1; see Signer). */
  signingThreads?: number;
  now: () => number;
  /**
   * Runs `fn` while holding the database-wide lock that makes key changes
   * happen once across instances (see withMigrationLock).
   */
  withLock: <T>(fn: () => Promise<T>) => Promise<T>;
}

/** What one maintenance pass changed. */
export interface KeyMaintenance {
  created: string | null;
  promoted: string | null;
  removed: number;
}

/** A key file that cannot be used as a signing key. */
export class KeyImportError extends Error {
  override name = 'KeyImportError';
}

/** The JWKS document, pre-serialized once per key-set change (it is served from memory). */
export interface JwksDocument {
  body: string;
  etag: string;
}

/** The current signing key as the store holds it. */
interface CurrentKey {
  kid: string;
  privateKey: KeyObject;
  /** BASE64URL(UTF8(JWS Protected Header)) of tokens signed with it (RFC 7515 §7.1). */
  header: string;
}

/** The encoded protected header of an access token signed with `kid`: RS256, `typ` at+jwt (RFC 9068 §2.1). */
function encodedHeader(kid: string): string {
  return Buffer.from(JSON.stringify({ alg: SIGNING_ALGORITHM, typ: ACCESS_TOKEN_TYPE, kid })).toString('base64url');
}

/**
 * Holds the signing keys in memory. It is the only module that sees private
 * keys: it decrypts the current one from the database, signs access tokens with
 * it, and publishes the public halves as the JWKS (RFC 7517).
 */
export class KeyStore {
  /** The current key, with its JWS protected header already encoded (the same for every token it signs). */
  #current: CurrentKey | null = null;
  #published = new Map<string, PublicSigningKey>();
  #currentRecord: SigningKeyRecord | null = null;
  #jwks: JwksDocument = serializeJwks([]);
  #timer: NodeJS.Timeout | null = null;
  /** Told about every change a scheduled maintenance pass makes (for the audit trail). */
  onMaintenance: ((changes: KeyMaintenance) => Promise<void>) | null = null;
  #lastReload = 0;
  readonly #signer: Signer;

  constructor(
    private readonly repository: SigningKeyRepository,
    private readonly box: SecretBox,
    private readonly options: KeyStoreOptions,
  ) {
    this.#signer = new Signer(options.signingThreads ?? 1);
  }

  /** True once a current signing key is loaded. */
  get ready(): boolean {
    return this.#current !== null;
  }

  /**
   * The current key's age and the time to the next scheduled hand-over, in
   * seconds (null when rotation is off), from the last reload (metrics).
   */
  schedule(): { currentKeyAge: number | null; nextRotationIn: number | null } {
    const current = this.#currentRecord;
    if (!current) return { currentKeyAge: null, nextRotationIn: null };
    const now = this.options.now();
    const rotationAt = this.#nextRotationAt(current);
    return {
      currentKeyAge: (now - (current.activatedAt ?? current.createdAt).getTime()) / 1000,
      nextRotationIn: rotationAt === null ? null : (rotationAt - now) / 1000,
    };
  }

  get currentKid(): string | undefined {
    return this.#current?.kid;
  }

  get jwks(): JwksDocument {
    return this.#jwks;
  }

  /** The public key for `kid`, if it is published. */
  publicKey(kid: string): PublicSigningKey | undefined {
    return this.#published.get(kid);
  }

  /**
   * Brings the key set up to date with the schedule, then reloads it. The
   * database is the source of truth: every instance runs this every
   * KEY_REFRESH_INTERVAL; a change (first key, `next` key, promotion, removal)
   * is decided again under the database-wide lock, so exactly one instance
   * makes it, and every other instance picks it up at its next pass.
   *
   * Lifecycle: `next` (published, not signing) for KEY_PUBLISH_LEAD, so every
   * verifier's cached JWKS holds it before it signs; `current` (signing) until
   * KEY_ROTATION_INTERVAL after it started; `retired` (published, not signing)
   * until every token it signed has expired; then deleted.
   */
  async maintain(): Promise<KeyMaintenance> {
    let result: KeyMaintenance = { created: null, promoted: null, removed: 0 };
    if (this.#due(await this.repository.listUsable())) {
      result = await this.options.withLock(async () => this.#apply(await this.repository.listUsable()));
    }
    await this.reload();
    return result;
  }

  /** Whether `records` call for a change at this moment. */
  #due(records: SigningKeyRecord[]): boolean {
    const now = this.options.now();
    const current = records.find((record) => record.status === 'current');
    const next = records.find((record) => record.status === 'next');
    if (!current) return true;
    if (next && (next.activatesAt?.getTime() ?? 0) <= now) return true;
    if (!next && this.#nextRotationAt(current) !== null && (this.#nextRotationAt(current) ?? 0) - this.#lead() <= now)
      return true;
    return records.some((record) => record.status === 'retired' && this.#removalDue(record, now));
  }

  async #apply(records: SigningKeyRecord[]): Promise<KeyMaintenance> {
    const now = this.options.now();
    const result: KeyMaintenance = { created: null, promoted: null, removed: 0 };
    let current = records.find((record) => record.status === 'current');
    const next = records.find((record) => record.status === 'next');
    if (!current) {
      // First boot (or every key revoked): nothing signs yet, so no verifier can be
      // surprised; a waiting `next` key is used at once, else a new key.
      if (next) {
        await this.repository.promote(next.kid, new Date(now));
        result.promoted = next.kid;
      } else {
        result.created = await this.#createCurrent(await this.#generate());
      }
      return result;
    }
    if (next && (next.activatesAt?.getTime() ?? 0) <= now) {
      if (await this.repository.promote(next.kid, new Date(now))) result.promoted = next.kid;
      current = undefined;
    }
    const rotationAt = current ? this.#nextRotationAt(current) : null;
    if (current && !next && rotationAt !== null && rotationAt - this.#lead() <= now) {
      result.created = await this.#createNext(
        await this.#generate(),
        new Date(Math.max(rotationAt, now + this.#lead())),
      );
    }
    result.removed = await this.repository.deleteRetiredBefore(new Date(now - this.#retiredLifetime()));
    return result;
  }

  /** When the current key is due to hand over to the next, or null without scheduled rotation. */
  #nextRotationAt(current: SigningKeyRecord): number | null {
    if (this.options.rotationInterval <= 0) return null;
    return (current.activatedAt ?? current.createdAt).getTime() + this.options.rotationInterval * 1000;
  }

  #lead(): number {
    return this.options.publishLead * 1000;
  }

  /**
   * How long a retired key stays published: the last token it signed may have
   * been signed by an instance that had not yet reloaded, and lives for the
   * access-token lifetime, plus the clock leeway verifiers allow.
   */
  #retiredLifetime(): number {
    return (this.options.accessTokenTtl + this.options.clockLeeway + this.options.keyRefreshInterval) * 1000;
  }

  #removalDue(record: SigningKeyRecord, now: number): boolean {
    return (record.retiredAt?.getTime() ?? 0) + this.#retiredLifetime() < now;
  }

  /** Reloads the key set from the database, the source of truth shared by all instances. */
  async reload(): Promise<void> {
    const now = this.options.now();
    this.#lastReload = now;
    const published = new Map<string, PublicSigningKey>();
    let current: CurrentKey | null = null;
    let currentRecord: SigningKeyRecord | null = null;
    for (const record of await this.repository.listUsable()) {
      // A retired key past its lifetime is not published even before the
      // scheduled pass deletes it.
      if (record.status === 'retired' && this.#removalDue(record, now)) continue;
      const jwk = JSON.parse(record.publicJwk) as JWK;
      const key = createPublicKey({ key: jwk, format: 'jwk' });
      const pem = key.export({ type: 'spki', format: 'pem' }).toString();
      published.set(record.kid, { kid: record.kid, status: record.status, jwk, key, pem });
      if (record.status === 'current') {
        currentRecord = record;
        const der = this.box.open(record.privateKey, 'signing-key', record.kid);
        current = {
          kid: record.kid,
          privateKey: createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }),
          header: encodedHeader(record.kid),
        };
      }
    }
    this.#published = published;
    this.#current = current;
    this.#currentRecord = currentRecord;
    // The current key first: some verifiers try keys in order.
    const ordered = [...published.values()].sort((a, b) => STATUS_ORDER[a.status] - STATUS_ORDER[b.status]);
    this.#jwks = serializeJwks(ordered.map((key) => key.jwk));
  }

  /**
   * Reloads when `kid` is not known here, at most once a second: another
   * instance may have rotated keys since our last reload.
   */
  async reloadForUnknownKid(kid: string): Promise<PublicSigningKey | undefined> {
    if (this.#published.has(kid)) return this.publicKey(kid);
    if (this.options.now() - this.#lastReload < 1000) return undefined;
    await this.reload();
    return this.publicKey(kid);
  }

  /**
   * Runs {@link maintain} every `intervalSeconds`, so scheduled rotations
   * happen and changes by other instances or the CLI are picked up without a
   * restart. A failed pass (database down) keeps the keys in memory.
   */
  startAutoReload(intervalSeconds: number, onError: (error: unknown) => void): void {
    this.stopAutoReload();
    let running = false;
    this.#timer = setInterval(() => {
      if (running) return;
      running = true;
      this.maintain()
        .then((changes) => (changes.created || changes.promoted ? this.onMaintenance?.(changes) : undefined))
        .catch(onError)
        .finally(() => {
          running = false;
        });
    }, intervalSeconds * 1000);
    this.#timer.unref();
  }

  stopAutoReload(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Stops background work: key reloads and the signing thread. */
  async close(): Promise<void> {
    this.stopAutoReload();
    await this.#signer.close();
  }

  /** Signs an RFC 9068 access token with the current key. */
  async signAccessToken(claims: JWTPayload): Promise<string> {
    const current = this.#current;
    if (!current) throw new Error('no current signing key is loaded');
    return inSpan('jwt.sign', { 'tessera.kid': current.kid, 'tessera.alg': SIGNING_ALGORITHM }, async () => {
      // RFC 7515 compact serialization, byte for byte what jose's SignJWT makes
      // (RS256 is deterministic); the RSA operation runs on the signing thread.
      const input = `${current.header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
      const signature = await this.#signer.sign(current.kid, current.privateKey, input);
      return `${input}.${signature.toString('base64url')}`;
    });
  }

  /** Every stored key's metadata, newest first; never the private key. */
  async list(): Promise<
    Array<{
      kid: string;
      status: string;
      createdAt: Date;
      activatesAt: Date | null;
      activatedAt: Date | null;
      retiredAt: Date | null;
      revokedAt: Date | null;
    }>
  > {
    const keys = await this.repository.listAll();
    return keys.map(({ kid, status, createdAt, activatesAt, activatedAt, retiredAt, revokedAt }) => ({
      kid,
      status,
      createdAt,
      activatesAt,
      activatedAt,
      retiredAt,
      revokedAt,
    }));
  }

  /**
   * Planned rotation, on the same rules as the schedule: a new key is
   * published now as `next` and starts signing KEY_PUBLISH_LEAD later (at the
   * next maintenance pass after that). If a `next` key is already waiting, it
   * is kept and returned. Returns the kid and when it will sign.
   */
  async rotate(): Promise<{ kid: string; activatesAt: Date; created: boolean }> {
    const result = await this.options.withLock(async () => {
      const waiting = (await this.repository.listUsable()).find((record) => record.status === 'next');
      if (waiting?.activatesAt) return { kid: waiting.kid, activatesAt: waiting.activatesAt, created: false };
      const activatesAt = new Date(this.options.now() + this.#lead());
      const kid = await this.#createNext(await this.#generate(), activatesAt);
      return { kid, activatesAt, created: true };
    });
    await this.reload();
    return result;
  }

  /**
   * Compromise: the key leaves the JWKS at once and tokens it signed stop
   * verifying here (other instances follow at their next reload). If it was the
   * current key, a waiting `next` key takes over at once, or a new key is made.
   * Returns false when no such key exists.
   */
  async revoke(kid: string): Promise<{ revoked: boolean; replacement: string | null }> {
    const result = await this.options.withLock(async () => {
      const previous = await this.repository.revoke(kid, new Date(this.options.now()));
      if (previous === null) return { revoked: false, replacement: null };
      if (previous !== 'current') return { revoked: true, replacement: null };
      const { created, promoted } = await this.#apply(await this.repository.listUsable());
      return { revoked: true, replacement: promoted ?? created };
    });
    await this.reload();
    return result;
  }

  /**
   * Re-encrypts every stored private key under the current key-encryption
   * secret (KEY_ENCRYPTION_SECRET); keys sealed under the previous one
   * (KEY_ENCRYPTION_SECRET_PREVIOUS) are opened with it. Returns how many changed.
   */
  async rewrap(): Promise<number> {
    let changed = 0;
    for (const record of await this.repository.listAll()) {
      if (this.box.isCurrent(record.privateKey)) continue;
      await this.repository.updateSealedPrivateKey(
        record.kid,
        this.box.reseal(record.privateKey, 'signing-key', record.kid),
      );
      changed += 1;
    }
    return changed;
  }

  /**
   * Imports an RSA private key from PEM (PKCS#1 `BEGIN RSA PRIVATE KEY`, as
   * written by `ssh-keygen -m pem` and older `openssl genrsa`, or PKCS#8
   * `BEGIN PRIVATE KEY`). It becomes the `next` key, signing after
   * KEY_PUBLISH_LEAD like any new key; on a key store with no current key it
   * signs at once. Returns its kid and when it signs.
   */
  async importPem(pem: string): Promise<{ kid: string; activatesAt: Date }> {
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: pem, format: 'pem' });
    } catch (error) {
      throw new KeyImportError(
        `not a readable unencrypted PEM private key (${(error as Error).message}); decrypt it first, e.g. \`openssl pkey -in key.pem -out plain.pem\``,
      );
    }
    if (privateKey.asymmetricKeyType !== 'rsa') {
      throw new KeyImportError(`only RSA keys can sign RS256 tokens; this key is ${privateKey.asymmetricKeyType}`);
    }
    const bits = privateKey.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS)
      throw new KeyImportError(`RSA keys must have at least ${MIN_RSA_BITS} bits; this one has ${bits}`);
    const pair = { privateKey, publicKey: createPublicKey(privateKey) };
    const kid = await thumbprint(pair.publicKey);
    const result = await this.options.withLock(async () => {
      if (await this.repository.exists(kid)) throw new KeyImportError(`key ${kid} is already in the key store`);
      const records = await this.repository.listUsable();
      const now = this.options.now();
      if (!records.some((record) => record.status === 'current')) {
        await this.#createCurrent(pair);
        return { kid, activatesAt: new Date(now) };
      }
      if (records.some((record) => record.status === 'next')) {
        throw new KeyImportError('a next key is already waiting to sign; import again after it has taken over');
      }
      const activatesAt = new Date(now + this.#lead());
      await this.#createNext(pair, activatesAt);
      return { kid, activatesAt };
    });
    await this.reload();
    return result;
  }

  #generate(): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> {
    return generateRsaKeyPair('rsa', { modulusLength: this.options.bits });
  }

  async #stored(pair: { privateKey: KeyObject; publicKey: KeyObject }) {
    const kid = await thumbprint(pair.publicKey);
    const { kty, n, e } = pair.publicKey.export({ format: 'jwk' });
    const jwk: JWK = { kty, n, e, kid, use: 'sig', alg: SIGNING_ALGORITHM };
    const der = pair.privateKey.export({ format: 'der', type: 'pkcs8' });
    return {
      kid,
      algorithm: SIGNING_ALGORITHM,
      publicJwk: JSON.stringify(jwk),
      privateKey: this.box.seal(der, 'signing-key', kid),
    };
  }

  async #createCurrent(pair: { privateKey: KeyObject; publicKey: KeyObject }): Promise<string> {
    const key = await this.#stored(pair);
    await this.repository.activate(key, new Date(this.options.now()));
    return key.kid;
  }

  async #createNext(pair: { privateKey: KeyObject; publicKey: KeyObject }, activatesAt: Date): Promise<string> {
    const key = await this.#stored(pair);
    await this.repository.insertNext(key, activatesAt, new Date(this.options.now()));
    return key.kid;
  }
}

const STATUS_ORDER: Record<SigningKeyRecord['status'], number> = { current: 0, next: 1, retired: 2, revoked: 3 };

/** RFC 7638 thumbprint (SHA-256, base64url) of an RSA public key. */
async function thumbprint(publicKey: KeyObject): Promise<string> {
  const { kty, n, e } = publicKey.export({ format: 'jwk' });
  return calculateJwkThumbprint({ kty, n, e }, 'sha256');
}

function serializeJwks(keys: JWK[]): JwksDocument {
  // Only the public members are ever copied into the document.
  const body = JSON.stringify({
    keys: keys.map(({ kty, n, e, kid, use, alg }) => ({ kty, n, e, kid, use, alg })),
  });
  return { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
}
