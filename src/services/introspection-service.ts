import type { AccessTokenClaims } from '../plugins/authenticate.js';
import type { SessionService } from './session-service.js';
import type { UserService } from './user-service.js';

/** RFC 7662 §2.2: an inactive token gets `active: false` and nothing else. */
export interface InactiveToken {
  active: false;
}

/** Introspection of an active access token: its claims, as RFC 7662 §2.2 names them. */
export interface ActiveAccessToken {
  active: true;
  token_type: 'Bearer';
  client_id: string;
  username: string;
  sub: string;
  aud: string | string[];
  iss: string;
  exp: number;
  iat: number;
  jti: string;
  sid: string;
  roles: string[];
}

/** Introspection of an active (current, unrotated) refresh token. */
export interface ActiveRefreshToken {
  active: true;
  token_type: 'refresh_token';
  client_id: string;
  username: string;
  sub: string;
  sid: string;
  exp: number;
}

export type IntrospectionResponse = InactiveToken | ActiveAccessToken | ActiveRefreshToken;

export const INACTIVE: InactiveToken = Object.freeze({ active: false });

/**
 * RFC 7662 token introspection, the online alternative to verifying locally
 * and polling /v1/revocations. Reading only: introspecting a refresh token
 * never rotates it and never counts as a reuse.
 */
export class IntrospectionService {
  constructor(
    private readonly users: UserService,
    private readonly sessions: SessionService,
    private readonly policy: { clientId: string },
  ) {}

  /**
   * Whether `token` has the shape of a JWS (three dot-separated parts). Refresh
   * tokens are base64url without dots, so the two kinds never overlap and a
   * `token_type_hint` is not needed to tell them apart (RFC 7662 §2.1 lets the
   * server ignore it).
   */
  looksLikeAccessToken(token: string): boolean {
    return token.includes('.');
  }

  /** The response for an access token that verified and is still active. */
  describeAccessToken(claims: AccessTokenClaims): ActiveAccessToken {
    return {
      active: true,
      token_type: 'Bearer',
      client_id: claims.client_id,
      username: claims.username,
      sub: claims.sub,
      aud: claims.aud,
      iss: claims.iss,
      exp: claims.exp,
      iat: claims.iat,
      jti: claims.jti,
      sid: claims.sid,
      roles: claims.roles,
    };
  }

  /** Introspects a refresh token: active only for the current token of an active session of an active user. */
  async introspectRefreshToken(token: string): Promise<ActiveRefreshToken | InactiveToken> {
    const info = await this.sessions.inspect(token);
    if (!info) return INACTIVE;
    const user = await this.users.findById(info.userId);
    if (!user || user.disabledAt) return INACTIVE;
    return {
      active: true,
      token_type: 'refresh_token',
      // Sessions are opened only by the token endpoint, for tessera's one client.
      client_id: this.policy.clientId,
      username: user.username,
      sub: user.id,
      sid: info.sessionId,
      exp: Math.floor(info.expiresAt.getTime() / 1000),
    };
  }
}
