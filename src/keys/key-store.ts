import { createHash, createPrivateKey, createPublicKey, generateKeyPair, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { calculateJwkThumbprint, type JWK, type JWTPayload, SignJWT } from 'jose';
import type { SecretBox } from '../crypto/secret-box.js';
import type { SigningKeyRecord, SigningKeyRepository } from '../repositories/signing-key-repository.js';

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

/** Options for {@link KeyStore}. */
export interface KeyStoreOptions {
  bits: 2048 | 3072 | 4096;
  /** Access-token lifetime: a retired key stays published this long (plus leeway). */
  accessTokenTtl: number;
  jwksMaxAge: number;
  now: () => number;
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

/**
 * Holds the signing keys in memory. It is the only module that sees private
 * keys: it decrypts the current one from the database, signs access tokens with
 * it, and publishes the public halves as the JWKS (RFC 7517).
 */
export class KeyStore {
  #current: { kid: string; privateKey: KeyObject } | null = null;
  #published = new Map<string, PublicSigningKey>();
  #jwks: JwksDocument = serializeJwks([]);
  #timer: NodeJS.Timeout | null = null;
  #lastReload = 0;

  constructor(
    private readonly repository: SigningKeyRepository,
    private readonly box: SecretBox,
    private readonly options: KeyStoreOptions,
  ) {}

  /** True once a current signing key is loaded. */
  get ready(): boolean {
    return this.#current !== null;
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
   * Creates and activates a signing key when there is no current one (first
   * boot). Call it under the start-up lock so concurrent instances create one key.
   */
  async ensureCurrentKey(): Promise<void> {
    const keys = await this.repository.listUsable();
    if (!keys.some((key) => key.status === 'current')) {
      await this.#activate(await generateRsaKeyPair('rsa', { modulusLength: this.options.bits }));
    }
  }

  /** Reloads the key set from the database, the source of truth shared by all instances. */
  async reload(): Promise<void> {
    const now = this.options.now();
    this.#lastReload = now;
    // A retired key stays published until every token it signed has expired.
    const publishedUntil = (this.options.accessTokenTtl + 60) * 1000;
    const published = new Map<string, PublicSigningKey>();
    let current: { kid: string; privateKey: KeyObject } | null = null;
    for (const record of await this.repository.listUsable()) {
      if (record.status === 'retired' && (record.retiredAt?.getTime() ?? 0) + publishedUntil < now) continue;
      const jwk = JSON.parse(record.publicJwk) as JWK;
      const key = createPublicKey({ key: jwk, format: 'jwk' });
      const pem = key.export({ type: 'spki', format: 'pem' }).toString();
      published.set(record.kid, { kid: record.kid, status: record.status, jwk, key, pem });
      if (record.status === 'current') {
        const der = this.box.open(record.privateKey, 'signing-key', record.kid);
        current = { kid: record.kid, privateKey: createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }) };
      }
    }
    this.#published = published;
    this.#current = current;
    this.#jwks = serializeJwks([...published.values()].map((key) => key.jwk));
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

  /** Reloads the key set every `intervalSeconds` so rotations by other instances or the CLI are picked up. */
  startAutoReload(intervalSeconds: number, onError: (error: unknown) => void): void {
    this.stopAutoReload();
    this.#timer = setInterval(() => {
      this.reload().catch(onError);
    }, intervalSeconds * 1000);
    this.#timer.unref();
  }

  stopAutoReload(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** Signs an RFC 9068 access token with the current key. */
  async signAccessToken(claims: JWTPayload): Promise<string> {
    const current = this.#current;
    if (!current) throw new Error('no current signing key is loaded');
    return new SignJWT(claims)
      .setProtectedHeader({ alg: SIGNING_ALGORITHM, typ: ACCESS_TOKEN_TYPE, kid: current.kid })
      .sign(current.privateKey);
  }

  /** Every stored key's metadata, newest first; never the private key. */
  async list(): Promise<
    Array<{ kid: string; status: string; createdAt: Date; activatedAt: Date | null; retiredAt: Date | null }>
  > {
    const keys = await this.repository.listAll();
    return keys.map(({ kid, status, createdAt, activatedAt, retiredAt }) => ({
      kid,
      status,
      createdAt,
      activatedAt,
      retiredAt,
    }));
  }

  /** Generates a new key and makes it the current one; the old one is retired. Returns the new kid. */
  async rotate(): Promise<string> {
    return this.#activate(await generateRsaKeyPair('rsa', { modulusLength: this.options.bits }));
  }

  /**
   * Imports an RSA private key from PEM (PKCS#1 `BEGIN RSA PRIVATE KEY`, as
   * written by `ssh-keygen -m pem` and older `openssl genrsa`, or PKCS#8
   * `BEGIN PRIVATE KEY`) and makes it the current signing key. Returns its kid.
   */
  async importPem(pem: string): Promise<string> {
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
    const publicKey = createPublicKey(privateKey);
    const kid = await thumbprint(publicKey);
    if (await this.repository.exists(kid)) throw new KeyImportError(`key ${kid} is already in the key store`);
    return this.#activate({ privateKey, publicKey });
  }

  async #activate(pair: { privateKey: KeyObject; publicKey: KeyObject }): Promise<string> {
    const kid = await thumbprint(pair.publicKey);
    const { kty, n, e } = pair.publicKey.export({ format: 'jwk' });
    const jwk: JWK = { kty, n, e, kid, use: 'sig', alg: SIGNING_ALGORITHM };
    const der = pair.privateKey.export({ format: 'der', type: 'pkcs8' });
    await this.repository.activate(
      {
        kid,
        algorithm: SIGNING_ALGORITHM,
        publicJwk: JSON.stringify(jwk),
        privateKey: this.box.seal(der, 'signing-key', kid),
      },
      new Date(this.options.now()),
    );
    await this.reload();
    return kid;
  }
}

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
