import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createSecretKey,
  hkdfSync,
  type KeyObject,
  randomBytes,
} from 'node:crypto';

const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** What a sealed value protects; each purpose gets its own derived key. */
export type SealPurpose = 'signing-key' | 'session-secret';

/**
 * AES-256-GCM encryption at rest under the key-encryption secret
 * (KEY_ENCRYPTION_SECRET). A separate 256-bit key is derived per purpose with
 * HKDF-SHA256, and every ciphertext is bound to the row it belongs to through
 * the GCM additional data, so a ciphertext copied to another row does not open.
 *
 * Sealed form: `v1.<secretId>.<iv>.<ciphertext+tag>` (base64url parts). The
 * secret id names which key-encryption secret sealed it, so a later re-wrap can
 * tell old ciphertexts from new ones.
 */
export class SecretBox {
  /** Id of the secret new values are sealed under. */
  readonly secretId: string;
  /** Secrets by id: the current one and any previous one still accepted for opening. */
  readonly #secrets = new Map<string, Buffer>();
  readonly #keys = new Map<string, KeyObject>();

  /**
   * @param secret the key-encryption secret that seals new values
   * @param previous secrets still accepted for opening (during `tessera keys rewrap`)
   */
  constructor(secret: string, previous: readonly string[] = []) {
    this.secretId = secretIdOf(secret);
    this.#secrets.set(this.secretId, Buffer.from(secret, 'utf8'));
    for (const old of previous) this.#secrets.set(secretIdOf(old), Buffer.from(old, 'utf8'));
  }

  /** The box for a configuration: KEY_ENCRYPTION_SECRET, plus KEY_ENCRYPTION_SECRET_PREVIOUS if set. */
  static fromConfig(config: { keyEncryptionSecret: string; previousKeyEncryptionSecret?: string | undefined }) {
    return new SecretBox(
      config.keyEncryptionSecret,
      config.previousKeyEncryptionSecret ? [config.previousKeyEncryptionSecret] : [],
    );
  }

  /** A KeyObject: a raw key would be imported again by every cipher made with it. */
  #key(secretId: string, purpose: SealPurpose): KeyObject {
    const cacheKey = `${secretId}\0${purpose}`;
    let key = this.#keys.get(cacheKey);
    if (!key) {
      const secret = this.#secrets.get(secretId);
      if (!secret) throw new Error(`sealed under an unknown key-encryption secret (id ${secretId})`);
      key = createSecretKey(Buffer.from(hkdfSync('sha256', secret, 'tessera', `tessera ${purpose} v1`, 32)));
      this.#keys.set(cacheKey, key);
    }
    return key;
  }

  /** Encrypts `plaintext` for the row identified by `context`, under the current secret. */
  seal(plaintext: Uint8Array, purpose: SealPurpose, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key(this.secretId, purpose), iv);
    cipher.setAAD(Buffer.from(`${purpose}\0${context}`));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    return [VERSION, this.secretId, iv.toString('base64url'), body.toString('base64url')].join('.');
  }

  /**
   * Decrypts a value sealed by {@link seal} under the current or a previous
   * secret; throws if it was tampered with, moved to another row, or sealed
   * under a secret this box does not hold.
   */
  open(sealed: string, purpose: SealPurpose, context: string): Buffer {
    const [version, secretId, ivPart, bodyPart] = sealed.split('.');
    if (version !== VERSION || secretId === undefined || ivPart === undefined || bodyPart === undefined) {
      throw new Error('sealed value has an unknown format');
    }
    const body = Buffer.from(bodyPart, 'base64url');
    if (body.length < TAG_BYTES) throw new Error('sealed value is truncated');
    const decipher = createDecipheriv('aes-256-gcm', this.#key(secretId, purpose), Buffer.from(ivPart, 'base64url'));
    decipher.setAAD(Buffer.from(`${purpose}\0${context}`));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    const plaintext = decipher.update(body.subarray(0, body.length - TAG_BYTES));
    // GCM releases nothing at final(); it is where the tag is checked (and throws).
    decipher.final();
    return plaintext;
  }

  /** Whether `sealed` is already sealed under the current secret. */
  isCurrent(sealed: string): boolean {
    return sealed.startsWith(`${VERSION}.${this.secretId}.`);
  }

  /** Re-encrypts a sealed value under the current secret (same purpose and row). */
  reseal(sealed: string, purpose: SealPurpose, context: string): string {
    return this.seal(this.open(sealed, purpose, context), purpose, context);
  }
}

/** A short public identifier of a secret (never the secret itself). */
function secretIdOf(secret: string): string {
  return createHash('sha256').update('tessera secret id\0').update(secret, 'utf8').digest('base64url').slice(0, 8);
}
