import type { Redis } from 'ioredis';

/** A failure counter: how many, and when the last one happened (ms since the epoch). */
export interface Counter {
  count: number;
  last: number;
}

/**
 * Short-lived counters and flags for login throttling, shared by every
 * instance through Redis, or kept in memory for a single instance.
 */
export interface CounterStore {
  /** Adds one failure to `key` and returns the counter; the key expires `ttlSeconds` after its last failure. */
  increment(key: string, now: number, ttlSeconds: number): Promise<Counter>;
  get(key: string): Promise<Counter | null>;
  delete(...keys: string[]): Promise<void>;
  setFlag(key: string, ttlSeconds: number): Promise<void>;
  hasFlag(key: string): Promise<boolean>;
}

/**
 * In-memory store for one instance. Bounded: when `maxEntries` is reached the
 * oldest entries go first, so an attacker cycling through random usernames
 * cannot grow memory without limit.
 */
export class MemoryCounterStore implements CounterStore {
  readonly #entries = new Map<string, { counter: Counter; expiresAt: number }>();

  constructor(
    private readonly clock: () => number = Date.now,
    private readonly maxEntries = 100_000,
  ) {}

  async increment(key: string, now: number, ttlSeconds: number): Promise<Counter> {
    const previous = this.#live(key);
    const counter = { count: (previous?.count ?? 0) + 1, last: now };
    // Re-insert so that Map order is least-recently-failed first.
    this.#entries.delete(key);
    this.#entries.set(key, { counter, expiresAt: now + ttlSeconds * 1000 });
    this.#evict();
    return counter;
  }

  async get(key: string): Promise<Counter | null> {
    return this.#live(key);
  }

  async delete(...keys: string[]): Promise<void> {
    for (const key of keys) this.#entries.delete(key);
  }

  async setFlag(key: string, ttlSeconds: number): Promise<void> {
    this.#entries.delete(key);
    this.#entries.set(key, { counter: { count: 1, last: this.clock() }, expiresAt: this.clock() + ttlSeconds * 1000 });
    this.#evict();
  }

  async hasFlag(key: string): Promise<boolean> {
    return this.#live(key) !== null;
  }

  #live(key: string): Counter | null {
    const entry = this.#entries.get(key);
    if (!entry) return null;
    if (entry.expiresAt <= this.clock()) {
      this.#entries.delete(key);
      return null;
    }
    return entry.counter;
  }

  #evict(): void {
    while (this.#entries.size > this.maxEntries) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) return;
      this.#entries.delete(oldest);
    }
  }
}

/** Redis store: every instance sees the same counters. */
export class RedisCounterStore implements CounterStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'tessera:',
  ) {}

  async increment(key: string, now: number, ttlSeconds: number): Promise<Counter> {
    const name = this.prefix + key;
    const results = await this.redis
      .multi()
      .hincrby(name, 'count', 1)
      .hset(name, 'last', String(now))
      .expire(name, ttlSeconds)
      .exec();
    const count = Number(results?.[0]?.[1] ?? 1);
    return { count, last: now };
  }

  async get(key: string): Promise<Counter | null> {
    const fields = await this.redis.hgetall(this.prefix + key);
    if (!fields.count) return null;
    return { count: Number(fields.count), last: Number(fields.last ?? 0) };
  }

  async delete(...keys: string[]): Promise<void> {
    if (keys.length > 0) await this.redis.del(...keys.map((key) => this.prefix + key));
  }

  async setFlag(key: string, ttlSeconds: number): Promise<void> {
    await this.redis.set(this.prefix + key, '1', 'EX', ttlSeconds);
  }

  async hasFlag(key: string): Promise<boolean> {
    return (await this.redis.exists(this.prefix + key)) === 1;
  }
}
