import argon2 from 'argon2';

/** argon2id cost parameters (OWASP: m=19456 KiB, t=2, p=1). */
export interface Argon2Parameters {
  memoryCost: number;
  timeCost: number;
  parallelism: number;
}

/** Result of checking a password against a stored hash. */
export interface PasswordCheck {
  ok: boolean;
  /** The hash was made with other parameters; store a fresh one. */
  needsRehash: boolean;
}

/**
 * NIST SP 800-63B §5.1.1.2: passwords are Unicode-normalized before hashing, so
 * the same password typed on two keyboards matches. Nothing is truncated.
 */
export function normalizePassword(password: string): string {
  return password.normalize('NFKC');
}

/** argon2id hashing with the configured parameters, run on libuv's thread pool. */
export class PasswordHasher {
  #dummyHash: Promise<string> | null = null;

  constructor(private readonly parameters: Argon2Parameters) {}

  hash(password: string): Promise<string> {
    return argon2.hash(normalizePassword(password), { type: argon2.argon2id, ...this.parameters });
  }

  async verify(hash: string, password: string): Promise<PasswordCheck> {
    let ok = false;
    try {
      ok = await argon2.verify(hash, normalizePassword(password));
    } catch {
      // A malformed stored hash matches nothing.
      return { ok: false, needsRehash: false };
    }
    return { ok, needsRehash: ok && argon2.needsRehash(hash, { ...this.parameters }) };
  }

  /**
   * Spends the same work as {@link verify} against a hash no password matches,
   * so an unknown username costs as much time as a wrong password.
   */
  async verifyAgainstDummy(password: string): Promise<void> {
    this.#dummyHash ??= this.hash(`tessera-dummy-${Math.random()}`);
    await this.verify(await this.#dummyHash, password);
  }

  /** Computes the dummy hash ahead of the first unknown-user login. */
  async warmUp(): Promise<void> {
    this.#dummyHash ??= this.hash(`tessera-dummy-${Math.random()}`);
    await this.#dummyHash;
  }
}
