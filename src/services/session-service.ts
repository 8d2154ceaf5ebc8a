import { randomBytes, randomUUID } from 'node:crypto';
import type { SecretBox } from '../crypto/secret-box.js';
import type {
  SessionRecord,
  SessionRepository,
  SessionState,
  TokenSubject,
} from '../repositories/session-repository.js';
import {
  deriveRefreshToken,
  deriveSuccessorToken,
  type KnownMac,
  parseRefreshToken,
  type RefreshTokenParts,
  refreshTokenMatches,
} from './refresh-token.js';

/** Lifetimes that govern sessions, in seconds. */
export interface SessionPolicy {
  refreshTokenTtl: number;
  sessionMaxAge: number;
  refreshReuseGrace: number;
}

/** Why a refresh token was refused (all answer `invalid_grant`). */
export type RefreshFailure = 'invalid' | 'revoked' | 'expired' | 'reused';

export type RefreshOutcome =
  /** `user` is the session's owner as read with the session (the caller checks it is not disabled). */
  | {
      ok: true;
      userId: string;
      user: TokenSubject;
      sessionId: string;
      refreshToken: string;
      /** The session's absolute end: no token of it outlives this. */
      sessionExpiresAt: Date;
    }
  | { ok: false; reason: RefreshFailure; sessionId?: string; userId?: string };

/** Whether a verified access token is still good (see {@link SessionService.accessTokenStatus}). */
export type AccessTokenStatus = 'active' | 'session_ended' | 'revoked';

/** A current refresh token, as introspection reports it. */
export interface RefreshTokenInfo {
  userId: string;
  sessionId: string;
  /** When this token stops working unused (idle expiry, capped at the session's absolute end). */
  expiresAt: Date;
}

/**
 * How many opened session secrets {@link SessionService} keeps (~0.5 KiB
 * each). A refresh that finds its session's secret here skips the AES-256-GCM
 * open of the sealed value (the largest CPU cost of a refresh after the
 * signature, the database and HTTP).
 */
export const SESSION_SECRET_CACHE_SIZE = 10_000;

/** A session's opened secret, with the MAC of the newest token derived from it here (if any). */
interface OpenedSecret {
  userId: string;
  sealed: string;
  secret: Buffer;
  /** The session's absolute end, which never changes: the idle expiry of a rotation is capped at it. */
  expiresAt: Date;
  /** The generation `known` belongs to; -1 with no MAC kept. */
  generation: number;
  known: KnownMac | null;
}

/** Metadata recorded with a session so users can recognise it in their session list. */
export interface SessionMetadata {
  userAgent: string | null;
  ipAddress: string | null;
}

/**
 * Sessions and their refresh-token families: start, rotate with reuse
 * detection (RFC 9700 §4.14.2), list and revoke.
 */
export class SessionService {
  /**
   * Opened secrets by session id, least recently used first, each with the
   * sealed text it was opened from. A hit needs the row's sealed text to be
   * that same text, so a secret re-wrapped or altered in the database is
   * opened (and checked) again; the plaintext never leaves this process, which
   * holds the key-encryption secret that opens every sealed value anyway.
   * Revoking through this service drops the entry; a session ended elsewhere
   * (another instance, a password change, a disabled user) keeps it until it
   * is evicted or its revoked row is next read, and the row's `revoked_at` is
   * what refuses it. A revoked row's secret is never kept.
   */
  readonly #openedSecrets = new Map<string, OpenedSecret>();

  constructor(
    private readonly sessions: SessionRepository,
    private readonly box: SecretBox,
    private readonly policy: SessionPolicy,
    private readonly now: () => number,
    /** How many opened secrets to keep (tests use a small one to reach eviction). */
    private readonly secretCacheSize = SESSION_SECRET_CACHE_SIZE,
  ) {}

  /** Opens a session for a user who just proved their credentials; returns its first refresh token. */
  async start(
    userId: string,
    metadata: SessionMetadata,
  ): Promise<{ sessionId: string; refreshToken: string; expiresAt: Date }> {
    const now = this.now();
    const sessionId = randomUUID();
    const secret = randomBytes(32);
    const expiresAt = new Date(now + this.policy.sessionMaxAge * 1000);
    const sealed = this.box.seal(secret, 'session-secret', sessionId);
    await this.sessions.create({
      id: sessionId,
      userId,
      secret: sealed,
      generation: 0,
      createdAt: new Date(now),
      lastRotatedAt: new Date(now),
      refreshExpiresAt: this.#idleExpiry(now, expiresAt),
      expiresAt,
      userAgent: metadata.userAgent?.slice(0, 512) ?? null,
      ipAddress: metadata.ipAddress,
    });
    const first = deriveRefreshToken(secret, sessionId, 0);
    this.#remember(sessionId, {
      userId,
      sealed,
      secret,
      expiresAt,
      generation: 0,
      known: first.known,
    });
    return { sessionId, refreshToken: first.token, expiresAt };
  }

  /**
   * Exchanges a refresh token for its successor. The current token rotates
   * once; any number of concurrent or repeated presentations of it within the
   * grace window get that same successor, so parallel tabs stay on one chain.
   * A rotated token presented later is a replay: the whole session is revoked.
   */
  async refresh(token: string): Promise<RefreshOutcome> {
    const parts = parseRefreshToken(token);
    if (!parts) return { ok: false, reason: 'invalid' };
    const rotated = await this.#rotateKnown(parts);
    if (rotated) return rotated;
    const first = await this.sessions.findWithUser(parts.sessionId);
    const secret = first && this.#openSecret(first);
    if (!first || !secret || !this.#matches(first.id, secret, parts)) return { ok: false, reason: 'invalid' };
    // A session never changes owner: the user read now serves every pass below.
    const { user } = first;
    let session: SessionState | null = first;

    for (;;) {
      const now = this.now();
      if (session.revokedAt) return { ok: false, reason: 'revoked', sessionId: session.id };
      if (now >= session.expiresAt.getTime()) return { ok: false, reason: 'expired', sessionId: session.id };

      if (parts.generation === session.generation) {
        if (now >= session.refreshExpiresAt.getTime()) return { ok: false, reason: 'expired', sessionId: session.id };
        const rotated = await this.sessions.rotate(
          session.id,
          parts.generation,
          new Date(now),
          this.#idleExpiry(now, session.expiresAt),
        );
        if (rotated) return this.#success(parts, session.secret, session.expiresAt, secret, user, parts.generation + 1);
        // Another request rotated it first: decide again on the fresh state.
        session = await this.sessions.findById(parts.sessionId);
        if (!session) return { ok: false, reason: 'invalid' };
        continue;
      }

      const withinGrace = now - session.lastRotatedAt.getTime() <= this.policy.refreshReuseGrace * 1000;
      if (parts.generation === session.generation - 1 && withinGrace) {
        return this.#success(parts, session.secret, session.expiresAt, secret, user, session.generation);
      }
      if (parts.generation < session.generation) {
        await this.sessions.revoke(session.id, 'refresh_token_reuse', new Date(now));
        this.#openedSecrets.delete(session.id);
        return { ok: false, reason: 'reused', sessionId: session.id, userId: session.userId };
      }
      return { ok: false, reason: 'invalid' };
    }
  }

  /** RFC 7009: revokes the session a refresh token belongs to; unknown tokens are ignored. */
  async revokeByToken(token: string): Promise<{ sessionId: string; userId: string } | null> {
    const parts = parseRefreshToken(token);
    if (!parts) return null;
    const session = await this.sessions.findById(parts.sessionId);
    const secret = session && this.#openSecret(session);
    if (!session || !secret || !this.#matches(session.id, secret, parts)) return null;
    const ended = await this.sessions.revoke(session.id, 'logout', new Date(this.now()));
    this.#openedSecrets.delete(session.id);
    return ended ? { sessionId: session.id, userId: session.userId } : null;
  }

  /**
   * RFC 7009 with an access token (its claims already verified): ends the
   * session the token was issued for, a logout like one by its refresh token.
   * §2.1 lets the server revoke the refresh token along with an access token;
   * ending the session also publishes the access token in the revocation feed.
   */
  async revokeByAccessToken(claims: {
    sub: string;
    sid: string;
  }): Promise<{ sessionId: string; userId: string } | null> {
    const ended = await this.sessions.revoke(claims.sid, 'logout', new Date(this.now()), claims.sub);
    if (ended) this.#openedSecrets.delete(claims.sid);
    return ended ? { sessionId: claims.sid, userId: claims.sub } : null;
  }

  /** Whether the session exists and is neither revoked nor expired. */
  async isActive(sessionId: string): Promise<boolean> {
    const session = await this.sessions.findById(sessionId);
    return session !== null && !session.revokedAt && session.expiresAt.getTime() > this.now();
  }

  /**
   * Whether an access token whose signature and claims already verified is
   * still good, on the state only tessera holds: its session must be active
   * and belong to `sub`, the user must not be disabled, and the token must not
   * predate the user's `tokensRevokedAt` (the same rule /v1/revocations
   * publishes: revoked when `iat * 1000 < tokensRevokedAt`).
   */
  async accessTokenStatus(claims: { sid: string; sub: string; iat: number }): Promise<AccessTokenStatus> {
    const state = await this.sessions.findAccessState(claims.sid);
    if (!state || state.userId !== claims.sub) return 'session_ended';
    if (state.revokedAt || state.expiresAt.getTime() <= this.now()) return 'session_ended';
    if (state.userDisabledAt) return 'revoked';
    // The per-user revocation time (logout everywhere, disable) is not checked
    // here: it revoked every session that existed then, so an active session was
    // opened after it, and its tokens are good even when issued in the same second.
    return 'active';
  }

  /**
   * RFC 7662 view of a refresh token, without side effects: never rotates and
   * never treats a replay as reuse. Only the current generation of an active,
   * unexpired session counts; a rotated token is inactive even inside the
   * reuse grace window (it is no longer the token the client should hold).
   */
  async inspect(token: string): Promise<RefreshTokenInfo | null> {
    const parts = parseRefreshToken(token);
    if (!parts) return null;
    const session = await this.sessions.findById(parts.sessionId);
    const secret = session && this.#openSecret(session);
    if (!session || !secret || !this.#matches(session.id, secret, parts)) return null;
    const now = this.now();
    if (session.revokedAt || parts.generation !== session.generation) return null;
    if (now >= session.expiresAt.getTime() || now >= session.refreshExpiresAt.getTime()) return null;
    return { userId: session.userId, sessionId: session.id, expiresAt: session.refreshExpiresAt };
  }

  list(userId: string): Promise<SessionRecord[]> {
    return this.sessions.listActiveForUser(userId, new Date(this.now()));
  }

  async revoke(userId: string, sessionId: string): Promise<boolean> {
    const ended = await this.sessions.revoke(sessionId, 'revoked_by_user', new Date(this.now()), userId);
    // Only the owner's revoke may drop the entry (another user's attempt changes nothing).
    if (ended) this.#openedSecrets.delete(sessionId);
    return ended;
  }

  async revokeAll(userId: string): Promise<number> {
    const ended = await this.sessions.revokeAllForUser(userId, 'logout_all', new Date(this.now()));
    // A revoked session's secret is never needed again: keep no plaintext of it.
    for (const [sessionId, opened] of this.#openedSecrets) {
      if (opened.userId === userId) this.#openedSecrets.delete(sessionId);
    }
    return ended;
  }

  /**
   * The common refresh in one statement: when this process holds the
   * session's opened secret and the token checks against it, the rotation is
   * tried at once, on the condition that the row still holds that sealed
   * secret and is current, unrevoked, unexpired and of a user not disabled
   * (see {@link SessionRepository.rotateIfCurrent}). Null for everything else
   * (not cached, a token that does not check, a replay, a race, an ended
   * session): {@link refresh} then reads the row and decides as it always has.
   */
  async #rotateKnown(parts: RefreshTokenParts): Promise<RefreshOutcome | null> {
    const opened = this.#openedSecrets.get(parts.sessionId);
    if (!opened || !refreshTokenMatches(opened.secret, parts, opened.known)) return null;
    const now = this.now();
    if (now >= opened.expiresAt.getTime()) return null;
    const user = await this.sessions.rotateIfCurrent(
      parts.sessionId,
      parts.generation,
      opened.sealed,
      new Date(now),
      this.#idleExpiry(now, opened.expiresAt),
    );
    if (!user) return null;
    // Most recently used goes last (the entry may have been replaced meanwhile: keep the newer one).
    if (this.#openedSecrets.get(parts.sessionId) === opened) this.#remember(parts.sessionId, opened);
    return this.#success(parts, opened.sealed, opened.expiresAt, opened.secret, user, parts.generation + 1);
  }

  /**
   * `parts` is the presented token: the successor is of its session (with
   * `sealed` secret, ending at `sessionExpiresAt`), at `generation`.
   */
  #success(
    parts: RefreshTokenParts,
    sealed: string,
    sessionExpiresAt: Date,
    secret: Buffer,
    user: TokenSubject,
    generation: number,
  ): RefreshOutcome {
    const { sessionId } = parts;
    const next = deriveSuccessorToken(secret, parts, generation);
    // The next refresh presents this token: its MAC is then compared, not computed again.
    const opened = this.#openedSecrets.get(sessionId);
    if (opened && opened.sealed === sealed && opened.secret === secret && generation >= opened.generation) {
      opened.generation = generation;
      opened.known = next.known;
    }
    return {
      ok: true,
      userId: user.id,
      user,
      sessionId,
      refreshToken: next.token,
      sessionExpiresAt,
    };
  }

  #idleExpiry(now: number, sessionExpiresAt: Date): Date {
    return new Date(Math.min(now + this.policy.refreshTokenTtl * 1000, sessionExpiresAt.getTime()));
  }

  #openSecret(session: Pick<SessionState, 'id' | 'userId' | 'secret' | 'revokedAt' | 'expiresAt'>): Buffer | null {
    const cached = this.#openedSecrets.get(session.id);
    if (cached && cached.sealed === session.secret) {
      // Most recently used goes last; a session revoked elsewhere leaves the cache here.
      this.#openedSecrets.delete(session.id);
      if (!session.revokedAt) this.#openedSecrets.set(session.id, cached);
      return cached.secret;
    }
    let secret: Buffer;
    try {
      secret = this.box.open(session.secret, 'session-secret', session.id);
    } catch {
      return null;
    }
    // A revoked session's secret is opened to check the token (a replay is still told apart) but not kept.
    if (!session.revokedAt) {
      this.#remember(session.id, {
        userId: session.userId,
        sealed: session.secret,
        secret,
        expiresAt: session.expiresAt,
        generation: -1,
        known: null,
      });
    }
    return secret;
  }

  /** Whether `parts` is a token of this session's secret (after {@link #openSecret} gave `secret`). */
  #matches(sessionId: string, secret: Buffer, parts: RefreshTokenParts): boolean {
    const opened = this.#openedSecrets.get(sessionId);
    return refreshTokenMatches(secret, parts, opened?.secret === secret ? opened.known : null);
  }

  #remember(sessionId: string, opened: OpenedSecret): void {
    this.#openedSecrets.delete(sessionId);
    this.#openedSecrets.set(sessionId, opened);
    if (this.#openedSecrets.size > this.secretCacheSize) {
      const oldest = this.#openedSecrets.keys().next();
      if (!oldest.done) this.#openedSecrets.delete(oldest.value);
    }
  }
}
