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

declare module 'fastify' {
  interface FastifyInstance {
    /** onRequest hook: requires a valid access token of an active session, sets `request.user`. */
    authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  }
}

/**
 * JOSE header parameters that would make a verifier fetch or trust key material
 * named by the token itself (RFC 8725 §3.10) or demand extensions we do not
 * implement (RFC 7515 §4.1.11). Tokens carrying them are refused outright.
 */
const FORBIDDEN_HEADERS = ['jku', 'jwk', 'x5u', 'x5c', 'crit'];

class TokenRejected extends Error {}

function unauthorized(description: string | null): ProblemError {
  // RFC 6750 §3.1: no error code when the request carried no token at all.
  const challenge = description
    ? `Bearer realm="tessera", error="invalid_token", error_description="${description.replaceAll('"', "'")}"`
    : 'Bearer realm="tessera"';
  return new ProblemError('unauthorized', description ?? 'an access token is required', {
    'www-authenticate': challenge,
  });
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
      },
    });

    app.decorate('authenticate', async (request: FastifyRequest) => {
      const header = request.headers.authorization;
      if (!header) throw unauthorized(null);
      if (!/^Bearer [A-Za-z0-9._~+/-]+=*$/i.test(header))
        throw unauthorized('the Authorization header must be "Bearer <token>"');
      try {
        await request.jwtVerify();
      } catch (error) {
        if (error instanceof TokenRejected) throw unauthorized(error.message);
        const code = (error as { code?: string }).code;
        throw unauthorized(
          code === 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED'
            ? 'the access token has expired'
            : 'the access token is invalid',
        );
      }
      // We hold the session state, so tokens of ended sessions stop working here at once.
      if (!(await app.services.sessions.isActive(request.user.sid))) throw unauthorized('the session has ended');
    });
  },
  { name: 'authenticate', dependencies: ['key-store', 'services'] },
);
