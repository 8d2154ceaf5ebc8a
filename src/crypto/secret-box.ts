import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';

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
  readonly secretId: string;
  readonly #keys = new Map<SealPurpose, Buffer>();
  readonly #secret: Buffer;

  constructor(secret: string) {
    this.#secret = Buffer.from(secret, 'utf8');
    this.secretId = createHash('sha256')
      .update('tessera secret id\0')
      .update(this.#secret)
      .digest('base64url')
      .slice(0, 8);
  }

  #key(purpose: SealPurpose): Buffer {
    let key = this.#keys.get(purpose);
    if (!key) {
      key = Buffer.from(hkdfSync('sha256', this.#secret, 'tessera', `tessera ${purpose} v1`, 32));
      this.#keys.set(purpose, key);
    }
    return key;
  }

  /** Encrypts `plaintext` for the row identified by `context`. */
  seal(plaintext: Uint8Array, purpose: SealPurpose, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key(purpose), iv);
    cipher.setAAD(Buffer.from(`${purpose}\0${context}`));
    const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    return [VERSION, this.secretId, iv.toString('base64url'), body.toString('base64url')].join('.');
  }

  /** Decrypts a value sealed by {@link seal}; throws if it was tampered with or sealed under another secret. */
  open(sealed: string, purpose: SealPurpose, context: string): Buffer {
    const [version, secretId, ivPart, bodyPart] = sealed.split('.');
    if (version !== VERSION || ivPart === undefined || bodyPart === undefined) {
      throw new Error('sealed value has an unknown format');
    }
    if (secretId !== this.secretId) {
      throw new Error(`sealed under another key-encryption secret (id ${secretId})`);
    }
    const body = Buffer.from(bodyPart, 'base64url');
    if (body.length < TAG_BYTES) throw new Error('sealed value is truncated');
    const decipher = createDecipheriv('aes-256-gcm', this.#key(purpose), Buffer.from(ivPart, 'base64url'));
    decipher.setAAD(Buffer.from(`${purpose}\0${context}`));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    return Buffer.concat([decipher.update(body.subarray(0, body.length - TAG_BYTES)), decipher.final()]);
  }
}
