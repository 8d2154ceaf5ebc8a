import fastifyJwt from '@fastify/jwt';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { ProblemError } from '../errors.js';
import { ACCESS_TOKEN_TYPE, SIGNING_ALGORITHM } from '../keys/key-store.js';

/** The claims of a verified tessera access token (RFC 9068). */
export interface AccessTokenClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  jti: string;
  client_id: string;
  sid: string;
  username: string;
  roles: string[];
}

declare module '@fastify/jwt' {
  interface FastifyJWT {
    payload: AccessTokenClaims;
    user: AccessTokenClaims;
  }
}

/** The outcome of {@link FastifyInstance.verifyAccessToken}; `reason` is safe to show the caller. */
export type AccessTokenVerification = { ok: true; claims: AccessTokenClaims } | { ok: false; reason: string };

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook: requires a valid access token of an active session, sets `request.user`. */
    authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
    /**
     * Verifies an access token exactly as `authenticate` does (signature,
     * header, claims, session state, per-user revocation), for a token that did
     * not come in the Authorization header (token introspection). Leaves
     * `request.user` untouched.
     */
    verifyAccessToken: (request: FastifyRequest, token: string) => Promise<AccessTokenVerification>;
  }
}

/**
 * JOSE header parameters that would make a verifier fetch or trust key material
 * named by the token itself (RFC 8725 §3.10) or demand extensions we do not
 * implement (RFC 7515 §4.1.11). Tokens carrying them are refused outright.
 */
const FORBIDDEN_HEADERS = ['jku', 'jwk', 'x5u', 'x5c', 'crit'];

class TokenRejected extends Error {}

/**
 * The token being verified for a request. @fastify/jwt reads it from here
 * (`extractToken`), so the Bearer header and introspection go through the one
 * verifier, with the same pinned options and the same per-key verifier cache.
 */
const presented = new WeakMap<FastifyRequest, string>();

function challenge(error: 'invalid_token' | 'invalid_request', description: string): string {
  return `Bearer realm="tessera", error="${error}", error_description="${description.replaceAll('"', "'")}"`;
}

function unauthorized(description: string | null): ProblemError {
  // RFC 6750 §3.1: no error code when the request carried no token at all.
  return new ProblemError('unauthorized', description ?? 'an access token is required', {
    'www-authenticate': description ? challenge('invalid_token', description) : 'Bearer realm="tessera"',
  });
}

/** RFC 6750 §2.1: `credentials = "Bearer" 1*SP b64token` (the scheme is case-insensitive, RFC 9110 §11.1). */
const BEARER_CREDENTIALS = /^Bearer +([A-Za-z0-9._~+/-]+=*)$/i;

/** RFC 9110 §11.4: the auth-scheme is the token the credentials start with. */
const BEARER_SCHEME = /^Bearer(?![!#$%&'*+.^_`|~0-9A-Za-z-])/i;

const MALFORMED_BEARER = 'the Authorization header must be "Bearer <token>"';

/**
 * The bearer token of an Authorization header. A header of another scheme
 * (Basic, DPoP, …) carries no bearer token: 401 with the bare challenge, as
 * for no header (RFC 6750 §3.1). A Bearer header that is not `Bearer
 * <b64token>` is a malformed request: 400 with `error="invalid_request"`.
 */
function bearerToken(header: string | undefined): string {
  if (!header || !BEARER_SCHEME.test(header)) throw unauthorized(null);
  const token = BEARER_CREDENTIALS.exec(header)?.[1];
  if (token === undefined) {
    throw new ProblemError('bad_request', MALFORMED_BEARER, {
      'www-authenticate': challenge('invalid_request', MALFORMED_BEARER),
    });
  }
  return token;
}

/**
 * Bearer access-token verification with @fastify/jwt, keyed by `kid` from the
 * service's own published keys. Pins RS256, issuer, audience and `typ`.
 */
export default fp(
  async function authenticate(app: FastifyInstance, options: { config: Config }) {
    const { config } = options;
    await app.register(fastifyJwt, {
      secret: {
        public: async (_request: FastifyRequest, token: unknown) => {
          const header = (token as { header?: Record<string, unknown> }).header ?? {};
          if (header.alg !== SIGNING_ALGORITHM) throw new TokenRejected('the token must be signed with RS256');
          if (header.typ !== ACCESS_TOKEN_TYPE) throw new TokenRejected('the token is not an access token');
          if (FORBIDDEN_HEADERS.some((name) => name in header))
            throw new TokenRejected('the token header is not accepted');
          const kid = header.kid;
          if (typeof kid !== 'string') throw new TokenRejected('the token has no key id');
          const key = app.keyStore.publicKey(kid) ?? (await app.keyStore.reloadForUnknownKid(kid));
          if (!key) throw new TokenRejected('the token was signed by an unknown key');
          return key.pem;
        },
      },
      decode: { complete: true },
      verify: {
        algorithms: [SIGNING_ALGORITHM],
        allowedIss: config.issuer,
        allowedAud: config.audience,
        requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'sid'],
        extractToken: (request: FastifyRequest) => presented.get(request),
      },
    });

    const verifyAccessToken = async (request: FastifyRequest, token: string): Promise<AccessTokenVerification> => {
      let claims: AccessTokenClaims;
      const previousUser = request.user;
      presented.set(request, token);
      try {
        claims = await request.jwtVerify();
      } catch (error) {
        if (error instanceof TokenRejected) return { ok: false, reason: error.message };
        const code = (error as { code?: string }).code;
        return {
          ok: false,
          reason:
            code === 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED'
              ? 'the access token has expired'
              : 'the access token is invalid',
        };
      } finally {
        presented.delete(request);
        // jwtVerify assigns request.user; only `authenticate` decides who the caller is.
        request.user = previousUser;
      }
      // RFC 7519 §4.1: claim types. A token signed by our key but with odd types
      // (only we could make one) is refused rather than reaching the database.
      const { sub, sid, jti, iat, exp } = claims as unknown as Record<string, unknown>;
      if (
        typeof sub !== 'string' ||
        typeof sid !== 'string' ||
        typeof jti !== 'string' ||
        !Number.isFinite(iat) ||
        !Number.isFinite(exp)
      ) {
        return { ok: false, reason: 'the access token is invalid' };
      }
      // We hold the session state, so tokens of ended sessions and of users whose
      // tokens were revoked (logout everywhere, disable) stop working here at once.
      const status = await app.services.sessions.accessTokenStatus(claims);
      if (status === 'session_ended') return { ok: false, reason: 'the session has ended' };
      if (status === 'revoked') return { ok: false, reason: 'the access token has been revoked' };
      return { ok: true, claims };
    };

    app.decorate('verifyAccessToken', verifyAccessToken);

    app.decorate('authenticate', async (request: FastifyRequest) => {
      const result = await verifyAccessToken(request, bearerToken(request.headers.authorization));
      if (!result.ok) throw unauthorized(result.reason);
      request.user = result.claims;
    });
  },
  { name: 'authenticate', dependencies: ['key-store', 'services'] },
);
