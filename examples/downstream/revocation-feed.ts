/** Where and how to poll tessera's revocation feed; durations in seconds. */
export interface RevocationFeedOptions {
  /** tessera's ISSUER; the feed is `<issuer>/v1/revocations`. */
  issuer: string;
  /** This service's id and secret in tessera's SERVICE_CREDENTIALS (`id:secret`). */
  serviceId: string;
  serviceSecret: string;
  /** Seconds between polls (default 5: tessera lets the answer be cached that long, so polling faster gains nothing). */
  intervalSeconds?: number;
  /**
   * How far before the previous `now` the next `since` starts (default 60,
   * tessera's default CLOCK_LEEWAY): an entry can be committed with a time
   * slightly before a `now` already seen, and entries are idempotent.
   */
  overlapSeconds?: number;
  /**
   * Fail closed: when no poll has succeeded for this long (or ever), tokens are
   * refused with 503 instead of being accepted without the revocation check.
   * `null` fails open. Default 60.
   */
  maxStalenessSeconds?: number | null;
  /** Timeout of one feed request (default 5). */
  timeoutSeconds?: number;
  /** Told about failed background polls (the last state is kept and the poll is retried next interval). */
  onError?: (error: unknown) => void;
}

/** The state of the feed, for health checks and tests. */
export interface RevocationFeedStatus {
  /** tessera's `now` at the last successful poll. */
  now: string | null;
  windowStart: string | null;
  sessions: number;
  users: number;
  /** When the last poll succeeded, by this service's clock. */
  lastSuccessAt: string | null;
  fresh: boolean;
}

/** The answer of GET /v1/revocations. */
interface FeedBody {
  now: string;
  windowStart: string;
  sessions: { sid: string; revokedAt: string }[];
  users: { sub: string; revokedBefore: string }[];
}

/** A time from the feed, as milliseconds; a malformed answer is refused whole. */
function time(value: unknown, name: string): number {
  const ms = typeof value === 'string' ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) throw new Error(`the revocation feed sent an invalid ${name}`);
  return ms;
}

function parseFeed(body: unknown): FeedBody & { nowMs: number; windowStartMs: number } {
  const feed = body as Partial<FeedBody> | null;
  if (!feed || !Array.isArray(feed.sessions) || !Array.isArray(feed.users)) {
    throw new Error('the revocation feed answer is malformed');
  }
  for (const entry of feed.sessions) {
    if (typeof entry?.sid !== 'string') throw new Error('the revocation feed sent a session without sid');
    time(entry.revokedAt, 'revokedAt');
  }
  for (const entry of feed.users) {
    if (typeof entry?.sub !== 'string') throw new Error('the revocation feed sent a user without sub');
    time(entry.revokedBefore, 'revokedBefore');
  }
  return {
    ...(feed as FeedBody),
    nowMs: time(feed.now, 'now'),
    windowStartMs: time(feed.windowStart, 'windowStart'),
  };
}

/**
 * Keeps a local copy of tessera's revocation feed (GET /v1/revocations) by
 * polling it, so a service that verifies access tokens locally also refuses
 * tokens of ended sessions and of users logged out everywhere, at most one poll
 * interval (plus tessera's 5 s of caching) after the fact.
 *
 * Each poll asks for entries since the previous `now` minus an overlap and
 * merges them; entries are dropped once they are older than the feed's
 * `windowStart` (tessera stops listing them then: every token they concern has
 * expired, given a clock tolerance of at most tessera's CLOCK_LEEWAY). A failed
 * poll keeps the last state and is retried at the next interval.
 */
export class RevocationFeed {
  readonly #url: URL;
  readonly #authorization: string;
  readonly #intervalMs: number;
  readonly #overlapMs: number;
  readonly #maxStalenessMs: number | null;
  readonly #timeoutMs: number;
  readonly #onError: (error: unknown) => void;

  /** sid → revokedAt (ms). */
  readonly #sessions = new Map<string, number>();
  /** sub → revokedBefore (ms): tokens of that user issued before it are revoked. */
  readonly #users = new Map<string, number>();
  #now: number | null = null;
  #windowStart: number | null = null;
  #lastSuccess: number | null = null;

  #timer: NodeJS.Timeout | null = null;
  #running = false;
  #inFlight: Promise<void> | null = null;
  #abort: AbortController | null = null;

  constructor(options: RevocationFeedOptions) {
    this.#url = new URL(`${options.issuer}/v1/revocations`);
    // RFC 7617; tessera accepts the pair as is (ids and generated secrets need no escaping).
    this.#authorization = `Basic ${Buffer.from(`${options.serviceId}:${options.serviceSecret}`).toString('base64')}`;
    this.#intervalMs = (options.intervalSeconds ?? 5) * 1000;
    this.#overlapMs = (options.overlapSeconds ?? 60) * 1000;
    const staleness = options.maxStalenessSeconds === undefined ? 60 : options.maxStalenessSeconds;
    this.#maxStalenessMs = staleness === null ? null : staleness * 1000;
    this.#timeoutMs = (options.timeoutSeconds ?? 5) * 1000;
    this.#onError = options.onError ?? (() => {});
    if (!(this.#intervalMs > 0)) throw new RangeError('intervalSeconds must be positive');
    if (!(this.#overlapMs >= 0)) throw new RangeError('overlapSeconds must not be negative');
  }

  /**
   * Whether the last successful poll is recent enough to rely on. Always true
   * when failing open (`maxStalenessSeconds: null`).
   */
  get fresh(): boolean {
    if (this.#maxStalenessMs === null) return true;
    return this.#lastSuccess !== null && Date.now() - this.#lastSuccess <= this.#maxStalenessMs;
  }

  /**
   * Whether a verified access token is revoked: its session is listed, or its
   * user is listed with `revokedBefore` after the token's `iat` (whole seconds,
   * so a token issued in the same second as the revocation counts as revoked).
   */
  isRevoked(claims: { sid: string; sub: string; iat: number }): boolean {
    if (this.#sessions.has(claims.sid)) return true;
    const revokedBefore = this.#users.get(claims.sub);
    return revokedBefore !== undefined && claims.iat * 1000 < revokedBefore;
  }

  status(): RevocationFeedStatus {
    const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
    return {
      now: iso(this.#now),
      windowStart: iso(this.#windowStart),
      sessions: this.#sessions.size,
      users: this.#users.size,
      lastSuccessAt: iso(this.#lastSuccess),
      fresh: this.fresh,
    };
  }

  /**
   * Polls once now, then every interval until {@link stop}. A failed first
   * poll is reported to `onError`, not thrown: the service starts anyway (and
   * refuses tokens with 503 while the feed is stale, unless failing open).
   */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    await this.pollNow().catch(this.#onError);
    this.#schedule();
  }

  /** Stops the timer and aborts a poll under way (call it when the service closes). */
  stop(): void {
    this.#running = false;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#abort?.abort();
  }

  /**
   * Polls now and resolves once the answer is merged; rejects when the poll
   * fails (the last state is kept). A poll already under way may have been
   * answered before the caller's event, so this waits for it and asks again.
   */
  async pollNow(): Promise<void> {
    while (this.#inFlight) await this.#inFlight.catch(() => {});
    const poll = this.#poll();
    this.#inFlight = poll;
    try {
      await poll;
    } finally {
      if (this.#inFlight === poll) this.#inFlight = null;
    }
  }

  #schedule(): void {
    if (!this.#running) return;
    // setTimeout after each poll rather than setInterval: a slow tessera never gets overlapping polls.
    this.#timer = setTimeout(() => {
      this.pollNow()
        .catch((error) => {
          if (this.#running) this.#onError(error);
        })
        .finally(() => this.#schedule());
    }, this.#intervalMs);
    this.#timer.unref();
  }

  async #poll(): Promise<void> {
    const url = new URL(this.#url);
    if (this.#now !== null) url.searchParams.set('since', new Date(this.#now - this.#overlapMs).toISOString());
    const abort = new AbortController();
    this.#abort = abort;
    const response = await fetch(url, {
      headers: { authorization: this.#authorization, accept: 'application/json' },
      // The credentials are for tessera only: a redirect is an error, not a place to send them.
      redirect: 'error',
      signal: AbortSignal.any([abort.signal, AbortSignal.timeout(this.#timeoutMs)]),
    });
    if (response.status !== 200) {
      await response.body?.cancel();
      throw new Error(`the revocation feed answered ${response.status}`);
    }
    const feed = parseFeed(await response.json());
    for (const { sid, revokedAt } of feed.sessions) this.#sessions.set(sid, Date.parse(revokedAt));
    for (const { sub, revokedBefore } of feed.users) {
      // The latest per-user revocation covers every earlier one.
      this.#users.set(sub, Math.max(this.#users.get(sub) ?? Number.NEGATIVE_INFINITY, Date.parse(revokedBefore)));
    }
    // At or before windowStart an entry only concerns tokens that have expired.
    for (const [sid, at] of this.#sessions) if (at <= feed.windowStartMs) this.#sessions.delete(sid);
    for (const [sub, at] of this.#users) if (at <= feed.windowStartMs) this.#users.delete(sub);
    this.#now = feed.nowMs;
    this.#windowStart = feed.windowStartMs;
    this.#lastSuccess = Date.now();
  }
}
