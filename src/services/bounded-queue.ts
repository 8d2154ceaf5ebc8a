/** Thrown when a {@link BoundedQueue} is full: the caller answers 503 at once instead of waiting. */
export class OverloadedError extends Error {
  override name = 'OverloadedError';
  constructor(
    message: string,
    /** Seconds after which a retry is likely to be served. */
    readonly retryAfter = 1,
  ) {
    super(message);
  }
}

/**
 * Thrown instead of running queued work whose requester has gone (its client
 * disconnected while the job waited): nobody would read the result.
 */
export class AbandonedError extends Error {
  override name = 'AbandonedError';
}

/**
 * Runs expensive work (argon2id: ~20 MiB and tens of milliseconds of a core
 * each) with at most `concurrency` jobs in flight and at most `limit` waiting.
 * Beyond that, work is refused immediately, so a flood costs neither memory
 * nor ever-growing latency: the queue is the only buffer.
 */
export class BoundedQueue {
  #active = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(
    readonly concurrency: number,
    readonly limit: number,
  ) {}

  /** Jobs running now. */
  get active(): number {
    return this.#active;
  }

  /** Jobs waiting for a slot. */
  get depth(): number {
    return this.#waiting.length;
  }

  /**
   * Runs `job` when a slot is free; throws {@link OverloadedError} when the queue
   * is full, and {@link AbandonedError} when `abandoned()` says, as the slot
   * comes free, that nobody waits for the result any more.
   */
  async run<T>(job: () => Promise<T>, abandoned?: () => boolean): Promise<T> {
    if (this.#active >= this.concurrency) {
      if (this.#waiting.length >= this.limit) throw new OverloadedError('password hashing is saturated');
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    } else {
      this.#active += 1;
    }
    try {
      if (abandoned?.()) throw new AbandonedError('the requester has gone');
      return await job();
    } finally {
      // Hand the slot straight to the next waiter (the count stays the same).
      const next = this.#waiting.shift();
      if (next) next();
      else this.#active -= 1;
    }
  }
}
