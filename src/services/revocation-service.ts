import type { RevocationRepository } from '../repositories/revocation-repository.js';

/** What bounds the revocation window, in seconds. */
export interface RevocationPolicy {
  accessTokenTtl: number;
  clockLeeway: number;
}

/**
 * The body of GET /v1/revocations. An access token is revoked when its `sid`
 * is listed in `sessions`, or when its `sub` is listed in `users` and
 * `iat * 1000 < Date.parse(revokedBefore)`.
 */
export interface RevocationFeed {
  now: string;
  windowStart: string;
  sessions: { sid: string; revokedAt: string }[];
  users: { sub: string; revokedBefore: string }[];
}

/**
 * The revocation feed for services that verify access tokens locally.
 *
 * Only revocations that can still matter are listed: an access token lives
 * `accessTokenTtl` seconds and a verifier accepts it `clockLeeway` seconds
 * longer, so a revocation older than that window affects no token anyone
 * still accepts, and the feed stays small however long tessera runs.
 */
export class RevocationService {
  constructor(
    private readonly revocations: RevocationRepository,
    private readonly policy: RevocationPolicy,
    private readonly now: () => number,
  ) {}

  /** Start of the window: now − (access-token lifetime + clock leeway). */
  windowStart(now: number): number {
    return now - (this.policy.accessTokenTtl + this.policy.clockLeeway) * 1000;
  }

  /**
   * Revocations recorded after `max(since, windowStart)`. With no `since`,
   * everything in the window (entries exactly at its start already affect only
   * expired tokens, so the bound is strict in both cases).
   */
  async feed(since?: Date): Promise<RevocationFeed> {
    const now = this.now();
    const windowStart = this.windowStart(now);
    const after = new Date(Math.max(since?.getTime() ?? Number.NEGATIVE_INFINITY, windowStart));
    const [sessions, users] = await Promise.all([
      this.revocations.sessionsRevokedAfter(after),
      this.revocations.usersRevokedAfter(after),
    ]);
    return {
      now: new Date(now).toISOString(),
      windowStart: new Date(windowStart).toISOString(),
      sessions: sessions.map((session) => ({ sid: session.id, revokedAt: session.revokedAt.toISOString() })),
      users: users.map((user) => ({ sub: user.id, revokedBefore: user.tokensRevokedAt.toISOString() })),
    };
  }
}
