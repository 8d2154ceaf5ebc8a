import { randomUUID } from 'node:crypto';
import { OAuthError } from '../errors.js';
import type { KeyStore } from '../keys/key-store.js';
import type { UserRecord } from '../repositories/user-repository.js';
import type { SessionMetadata, SessionService } from './session-service.js';
import type { UserService } from './user-service.js';

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
  ) {}

  /** Resource owner password credentials grant: checks the credentials and opens a session. */
  async passwordGrant(username: string, password: string, metadata: SessionMetadata): Promise<TokenResponse> {
    const user = await this.users.authenticate(username, password);
    // One answer for unknown user, wrong password and disabled account.
    if (!user) throw new OAuthError('invalid_grant', 'the username or password is wrong');
    const { sessionId, refreshToken } = await this.sessions.start(user.id, metadata);
    return this.#respond(user, sessionId, refreshToken);
  }

  /** Refresh grant: rotates the refresh token and issues a fresh access token. */
  async refreshGrant(refreshToken: string): Promise<TokenResponse> {
    const outcome = await this.sessions.refresh(refreshToken);
    if (!outcome.ok) throw new OAuthError('invalid_grant', REFRESH_FAILURES[outcome.reason]);
    const user = await this.users.findById(outcome.userId);
    if (!user || user.disabledAt) throw new OAuthError('invalid_grant', REFRESH_FAILURES.revoked);
    return this.#respond(user, outcome.sessionId, outcome.refreshToken);
  }

  /**
   * Issues an RFC 9068 access token for a user's session. `iat` is never ahead
   * of this server's clock; verifiers allow for their own skew.
   */
  async issueAccessToken(user: UserRecord, sessionId: string): Promise<string> {
    const iat = Math.floor(this.now() / 1000);
    return this.keys.signAccessToken({
      iss: this.policy.issuer,
      sub: user.id,
      aud: this.policy.audience,
      exp: iat + this.policy.accessTokenTtl,
      iat,
      jti: randomUUID(),
      client_id: this.policy.clientId,
      sid: sessionId,
      username: user.username,
      roles: user.roles,
    });
  }

  async #respond(user: UserRecord, sessionId: string, refreshToken: string): Promise<TokenResponse> {
    return {
      access_token: await this.issueAccessToken(user, sessionId),
      token_type: 'Bearer',
      expires_in: this.policy.accessTokenTtl,
      refresh_token: refreshToken,
    };
  }
}
