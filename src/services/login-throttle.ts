import { createHash } from 'node:crypto';
import type { Counter, CounterStore } from './counter-store.js';

/** Throttling thresholds (see LOGIN_* in .env.example). */
export interface LoginThrottlePolicy {
  /** Failures for one username from one IP before delays start. */
  freeAttempts: number;
  /** Failures for one username from IPs that never logged into it, before delays start for those IPs. */
  freeAttemptsAccount: number;
  /** Longest delay, seconds: reached after enough doublings, it acts as a temporary block. */
  maxDelay: number;
}

/**
 * `busy`: refused because earlier attempts for the account are still being
 * checked after the longest wait (not a failure count): a 503, not a 429.
 */
export type ThrottleDecision = { allowed: true } | { allowed: false; retryAfter: number; busy?: true };

/**
 * The longest an attempt waits for attempts in flight before it is decided on
 * the stored counters alone. A wrong password is decided within a hash (tens
 * of ms); attempts slower than this (the database is stalling, the hash queue
 * is long) must not make every attempt behind them slower still.
 */
const IN_FLIGHT_WAIT_MS = 500;

/** How long an IP that logged into an account stays "known" for it. */
const KNOWN_IP_TTL = 30 * 24 * 3600;

/**
 * Per-account protection against password guessing (OWASP ASVS V2.2.1)
 * that does not let an attacker lock the real user out:
 *
 * - failures per (username, IP): after `freeAttempts`, each further failure
 *   doubles the wait before the next attempt from that IP, up to `maxDelay`;
 * - failures per username from IPs that have never logged into it: the same
 *   with `freeAttemptsAccount`, which slows a guessing campaign spread over
 *   many IPs — but an IP the user has logged in from before is exempt from
 *   this account-wide counter, so the user still gets in from their usual
 *   network while the account is under attack elsewhere.
 *
 * A successful login resets both. The decision is the same whether or not
 * the username exists, so throttling reveals nothing about accounts.
 */
export class LoginThrottle {
  /** Attempts admitted on this instance and not yet recorded, by counter key, with who waits on them. */
  readonly #inFlight = new Map<string, { count: number; waiters: (() => void)[] }>();

  constructor(
    private readonly store: CounterStore,
    private readonly policy: LoginThrottlePolicy,
    private readonly now: () => number,
  ) {}

  /**
   * Whether a login attempt for `usernameKey` from `ip` may proceed now.
   * Attempts this instance has admitted and not yet recorded count as
   * failures meanwhile: otherwise guesses sent all at once would all pass
   * before the first had counted its failure, and each get a password check.
   * An attempt that only those in flight stand in the way of waits until one
   * of them is decided, then is decided again: parallel logins with the right
   * password all get in (a success resets the counters), parallel guesses get
   * no more checks than sequential ones. The wait is bounded
   * ({@link IN_FLIGHT_WAIT_MS}): past it the attempt is refused as `busy`
   * (retry in a second), so slow checks neither queue every attempt behind
   * them nor let extra guesses through. An allowed attempt holds its place
   * until `release()`, which the caller calls once it has recorded the
   * outcome ({@link recordFailure} or {@link recordSuccess}). Across
   * instances a burst can get its free attempts once per instance; the
   * counters themselves are shared (Redis).
   */
  async admit(usernameKey: string, ip: string): Promise<ThrottleDecision & { release: () => void }> {
    const keys = this.#keys(usernameKey, ip);
    const waitUntil = performance.now() + IN_FLIGHT_WAIT_MS;
    for (;;) {
      const [pair, account, known] = await Promise.all([
        this.store.get(keys.pair),
        this.store.get(keys.account),
        this.store.hasFlag(keys.known),
      ]);
      // From here to the place taken or the wait begun, nothing awaits.
      const now = this.now();
      // A known IP's typos do not count against the account as a whole (as in recordFailure).
      const counted: [string, Counter | null, number][] = [[keys.pair, pair, this.policy.freeAttempts]];
      if (!known) counted.push([keys.account, account, this.policy.freeAttemptsAccount]);
      const stored = Math.max(...counted.map(([, counter, free]) => this.#wait(counter, free, now)));
      if (stored > 0) return { allowed: false, retryAfter: stored, release: () => {} };
      const blocking = counted.filter(
        ([key, counter, free]) => this.#wait(this.#withInFlight(counter, key, now), free, now) > 0,
      );
      if (blocking.length === 0) return { allowed: true, release: this.#hold(counted.map(([key]) => key)) };
      const waitLeft = waitUntil - performance.now();
      if (waitLeft <= 0) return { allowed: false, retryAfter: 1, busy: true, release: () => {} };
      await this.#released(
        blocking.map(([key]) => key),
        waitLeft,
      );
    }
  }

  /** Takes a place under each key; the returned function gives it back (once), waking whoever waits. */
  #hold(held: string[]): () => void {
    for (const key of held) {
      const entry = this.#inFlight.get(key);
      if (entry) entry.count += 1;
      else this.#inFlight.set(key, { count: 1, waiters: [] });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const key of held) {
        const entry = this.#inFlight.get(key);
        if (!entry) continue;
        entry.count -= 1;
        const waiters = entry.waiters.splice(0);
        if (entry.count === 0) this.#inFlight.delete(key);
        for (const wake of waiters) wake();
      }
    };
  }

  /**
   * Resolves when an attempt in flight under one of `keys` is released, or
   * after `timeoutMs`, whichever comes first; leaves no waiter or timer behind.
   */
  #released(keys: string[], timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const entries = keys.flatMap((key) => this.#inFlight.get(key) ?? []);
      if (entries.length === 0) return resolve();
      const done = () => {
        clearTimeout(timer);
        for (const entry of entries) {
          const index = entry.waiters.indexOf(done);
          if (index !== -1) entry.waiters.splice(index, 1);
        }
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      timer.unref();
      for (const entry of entries) entry.waiters.push(done);
    });
  }

  /** Records a failed attempt (wrong password or unknown user: the same). */
  async recordFailure(usernameKey: string, ip: string): Promise<void> {
    const keys = this.#keys(usernameKey, ip);
    const ttl = this.policy.maxDelay * 4;
    const known = await this.store.hasFlag(keys.known);
    await Promise.all([
      this.store.increment(keys.pair, this.now(), ttl),
      // A known IP's typos do not count against the account as a whole.
      known ? Promise.resolve() : this.store.increment(keys.account, this.now(), ttl),
    ]);
  }

  /** A successful login: forget the failures and remember the IP for this account. */
  async recordSuccess(usernameKey: string, ip: string): Promise<void> {
    const keys = this.#keys(usernameKey, ip);
    await this.store.delete(keys.pair, keys.account);
    await this.store.setFlag(keys.known, KNOWN_IP_TTL);
  }

  /** A stored counter with this instance's attempts in flight added, as failures made now. */
  #withInFlight(counter: { count: number; last: number } | null, key: string, now: number) {
    const inFlight = this.#inFlight.get(key)?.count ?? 0;
    if (inFlight === 0) return counter;
    return { count: (counter?.count ?? 0) + inFlight, last: now };
  }

  /** Seconds to wait before the next attempt is allowed under one counter. */
  #wait(counter: { count: number; last: number } | null, free: number, now: number): number {
    if (!counter || counter.count < free) return 0;
    const delay = Math.min(2 ** (counter.count - free), this.policy.maxDelay) * 1000;
    const remaining = counter.last + delay - now;
    return remaining > 0 ? Math.ceil(remaining / 1000) : 0;
  }

  #keys(usernameKey: string, ip: string) {
    // Hashed so that usernames and addresses are not stored in the clear in Redis.
    const user = digest(usernameKey);
    const pair = digest(`${usernameKey}\0${ip}`);
    return { pair: `login:pair:${pair}`, account: `login:account:${user}`, known: `login:known:${pair}` };
  }
}

function digest(value: string): string {
  return createHash('sha256').update(value).digest('base64url').slice(0, 22);
}
