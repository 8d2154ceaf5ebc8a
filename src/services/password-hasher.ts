import argon2 from 'argon2';
import { inSpan } from '../telemetry/tracing.js';
import { AbandonedError, BoundedQueue, OverloadedError } from './bounded-queue.js';

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

/** How many hashes run at once and how many may wait. */
export interface HashingLimits {
  concurrency: number;
  queueLimit: number;
}

/**
 * argon2id hashing with the configured parameters. The work runs on libuv's
 * thread pool, never on the event loop, through a {@link BoundedQueue}: at most
 * `concurrency` hashes in flight (one per core by default) and `queueLimit`
 * waiting; beyond that {@link OverloadedError} is thrown and the request gets
 * 503 with Retry-After at once.
 */
export class PasswordHasher {
  #dummyHash: Promise<string> | null = null;
  readonly queue: BoundedQueue;
  /** Told how long each hash or verification took, in seconds (metrics). */
  onHashed: ((seconds: number, kind: 'hash' | 'verify') => void) | null = null;

  constructor(
    private readonly parameters: Argon2Parameters,
    limits: HashingLimits = { concurrency: 1, queueLimit: 64 },
  ) {
    this.queue = new BoundedQueue(limits.concurrency, limits.queueLimit);
  }

  hash(password: string): Promise<string> {
    return this.queue.run(() =>
      this.#timed('hash', () =>
        argon2.hash(normalizePassword(password), { type: argon2.argon2id, ...this.parameters }),
      ),
    );
  }

  /**
   * Checks `password` against `hash`. `abandoned` is asked when the check gets
   * its slot: a login whose client disconnected while it was queued is dropped
   * ({@link AbandonedError}) instead of spending ~20 MiB and a core's tens of ms.
   */
  async verify(hash: string, password: string, abandoned?: () => boolean): Promise<PasswordCheck> {
    let ok = false;
    try {
      ok = await this.queue.run(
        () => this.#timed('verify', () => argon2.verify(hash, normalizePassword(password))),
        abandoned,
      );
    } catch (error) {
      if (error instanceof OverloadedError || error instanceof AbandonedError) throw error;
      // A malformed stored hash matches nothing.
      return { ok: false, needsRehash: false };
    }
    return { ok, needsRehash: ok && argon2.needsRehash(hash, { ...this.parameters }) };
  }

  /**
   * Spends the same work as {@link verify} against a hash no password matches,
   * so an unknown username costs as much time as a wrong password.
   */
  async verifyAgainstDummy(password: string, abandoned?: () => boolean): Promise<void> {
    this.#dummyHash ??= this.hash(`tessera-dummy-${Math.random()}`);
    await this.verify(await this.#dummyHash, password, abandoned);
  }

  async #timed<T>(kind: 'hash' | 'verify', work: () => Promise<T>): Promise<T> {
    const started = process.hrtime.bigint();
    try {
      return await inSpan(`argon2id.${kind}`, { 'tessera.argon2.memory_kib': this.parameters.memoryCost }, work);
    } finally {
      this.onHashed?.(Number(process.hrtime.bigint() - started) / 1e9, kind);
    }
  }

  /** Computes the dummy hash ahead of the first unknown-user login. */
  async warmUp(): Promise<void> {
    this.#dummyHash ??= this.hash(`tessera-dummy-${Math.random()}`);
    await this.#dummyHash;
  }
}
