import { randomUUID } from 'node:crypto';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { OAuthError, ProblemError } from '../errors.js';
import type { KeyStore } from '../keys/key-store.js';
import type { TokenSubject } from '../repositories/session-repository.js';
import type { AuditContext, AuditLog } from './audit-log.js';
import type { LoginThrottle } from './login-throttle.js';
import type { SessionMetadata, SessionService } from './session-service.js';
import type { UserService } from './user-service.js';
import { canonicalUsername } from './usernames.js';

/** RFC 6749 §5.1 successful token response. */
export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
}

/** Settings that shape issued tokens. */
export interface TokenPolicy {
  issuer: string;
  audience: string;
  clientId: string;
  accessTokenTtl: number;
}

const REFRESH_FAILURES = {
  invalid: 'the refresh token is invalid',
  revoked: 'the refresh token has been revoked',
  expired: 'the refresh token has expired',
  reused: 'the refresh token was already used; the session has been revoked',
} as const;

/** The token endpoint's grants: password and refresh_token (RFC 6749 §4.3, §6). */
export class TokenService {
  constructor(
    private readonly users: UserService,
    private readonly sessions: SessionService,
    private readonly keys: KeyStore,
    private readonly policy: TokenPolicy,
    private readonly now: () => number,
    private readonly throttle: LoginThrottle,
    private readonly audit: AuditLog,
  ) {}

  /**
   * Resource owner password credentials grant: checks the credentials and
   * opens a session. Throttled per account before any hashing is spent.
   */
  async passwordGrant(
    username: string,
    password: string,
    metadata: SessionMetadata & { requestId?: string; abandoned?: () => boolean },
  ): Promise<TokenResponse> {
    const context = { ipAddress: metadata.ipAddress, userAgent: metadata.userAgent, requestId: metadata.requestId };
    const canonical = canonicalUsername(username);
    const throttleKey = 'error' in canonical ? username.toLowerCase().slice(0, 256) : canonical.key;
    const ip = metadata.ipAddress ?? 'unknown';
    const decision = await this.throttle.admit(throttleKey, ip);
    if (!decision.allowed && decision.busy) {
      throw new ProblemError(
        'service_unavailable',
        'earlier login attempts for this account are still being checked; retry',
        {
          'retry-after': String(decision.retryAfter),
        },
      );
    }
    if (!decision.allowed) {
      await this.audit.record({ type: 'login_throttled', ...context, details: { retryAfter: decision.retryAfter } });
      throw new ProblemError('too_many_attempts', `too many failed login attempts; retry in ${decision.retryAfter} s`, {
        'retry-after': String(decision.retryAfter),
      });
    }
    let user: Awaited<ReturnType<UserService['authenticate']>>;
    try {
      user = await this.users.authenticate(username, password, metadata.abandoned);
      // One answer for unknown user, wrong password and disabled account.
      if (!user) await this.throttle.recordFailure(throttleKey, ip);
      else {
        // The hash is done; what follows runs on the event loop. On SQLite every
        // statement is synchronous, so without these turns a login would hold the
        // event loop from here to its signature in one piece (several ms with cold
        // caches during a flood), and every JWKS fetch or refresh arriving meanwhile
        // would wait for all of it.
        await nextTurn();
        await this.throttle.recordSuccess(throttleKey, ip);
      }
    } finally {
      // The outcome is recorded (or the attempt failed before it had one): its place is free.
      decision.release();
    }
    if (!user) {
      // No username in the event: people type passwords into username fields.
      await this.audit.record({ type: 'login_failed', ...context });
      throw new OAuthError('invalid_grant', 'the username or password is wrong');
    }
    const { sessionId, refreshToken, expiresAt } = await this.sessions.start(user.id, metadata);
    await nextTurn();
    await this.audit.record({ type: 'login_succeeded', userId: user.id, sessionId, ...context });
    await nextTurn();
    return this.#respond(user, sessionId, refreshToken, expiresAt);
  }

  /** Refresh grant: rotates the refresh token and issues a fresh access token. */
  async refreshGrant(refreshToken: string, context: AuditContext = {}): Promise<TokenResponse> {
    const outcome = await this.sessions.refresh(refreshToken);
    if (!outcome.ok) {
      if (outcome.reason === 'reused') {
        // RFC 9700 §4.14.2: a replayed refresh token; the whole session was revoked.
        await this.audit.record({
          type: 'refresh_token_reuse',
          sessionId: outcome.sessionId ?? null,
          userId: outcome.userId ?? null,
          ...context,
          details: { revoked: 'session' },
        });
      }
      throw new OAuthError('invalid_grant', REFRESH_FAILURES[outcome.reason]);
    }
    // The owner was read together with the session (one query fewer per refresh).
    const { user } = outcome;
    if (user.disabledAt) throw new OAuthError('invalid_grant', REFRESH_FAILURES.revoked);
    return this.#respond(user, outcome.sessionId, outcome.refreshToken, outcome.sessionExpiresAt);
  }

  /**
   * Issues an RFC 9068 access token for a user's session. `iat` is never ahead
   * of this server's clock; verifiers allow for their own skew. The token ends
   * with its session at the latest (`sessionExpiresAt`): a verifier that checks
   * `exp` alone must not accept it once the session is over, and an ended
   * session is not in the revocation feed (expiry is not revocation).
   */
  async issueAccessToken(
    user: TokenSubject,
    sessionId: string,
    sessionExpiresAt: Date,
  ): Promise<{ token: string; expiresIn: number }> {
    const iat = Math.floor(this.now() / 1000);
    const exp = Math.max(
      iat,
      Math.min(iat + this.policy.accessTokenTtl, Math.floor(sessionExpiresAt.getTime() / 1000)),
    );
    const token = await this.keys.signAccessToken({
      iss: this.policy.issuer,
      sub: user.id,
      aud: this.policy.audience,
      exp,
      iat,
      jti: randomUUID(),
      client_id: this.policy.clientId,
      sid: sessionId,
      username: user.username,
      roles: user.roles,
    });
    return { token, expiresIn: exp - iat };
  }

  async #respond(
    user: TokenSubject,
    sessionId: string,
    refreshToken: string,
    sessionExpiresAt: Date,
  ): Promise<TokenResponse> {
    const { token, expiresIn } = await this.issueAccessToken(user, sessionId, sessionExpiresAt);
    return { access_token: token, token_type: 'Bearer', expires_in: expiresIn, refresh_token: refreshToken };
  }
}
