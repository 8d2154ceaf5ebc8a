import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
} from 'fastify';
import { RevocationFeed } from './revocation-feed.js';
import {
  type AccessTokenClaims,
  type AccessTokenVerifier,
  createJoseVerifier,
  InvalidToken,
  KeySourceUnavailable,
  registerFastifyJwtVerifier,
  type VerifierOptions,
} from './verifiers.js';

export { RevocationFeed } from './revocation-feed.js';
export type { AccessTokenClaims } from './verifiers.js';

/** Which library verifies the tokens (both apply the same checks). */
export type VerifierVariant = 'jose' | 'fastify-jwt';

/** Options of {@link buildDownstream}; durations in seconds. */
export interface DownstreamOptions {
  /** tessera's ISSUER (the tokens' `iss`); a trailing slash is ignored, as tessera ignores it. */
  issuer: string;
  /** This service's audience: tessera's AUDIENCE, the tokens' `aud`. */
  audience: string;
  /** `jose` (createRemoteJWKSet + jwtVerify, the default) or `fastify-jwt` (@fastify/jwt + get-jwks). */
  verifier?: VerifierVariant;
  /** Clock skew tolerated on `exp`; at most tessera's CLOCK_LEEWAY (60). Default 30. */
  clockToleranceSeconds?: number;
  /** How long fetched keys are used without refetching; at most tessera's JWKS max-age (300). Default 60. */
  jwksCacheSeconds?: number;
  /** Minimum time between JWKS refetches caused by unknown kids. Default 10. */
  jwksCooldownSeconds?: number;
  /** Timeout of one JWKS request. Default 5. */
  jwksTimeoutSeconds?: number;
  /**
   * Poll tessera's revocation feed with these service credentials (an `id:secret`
   * pair of tessera's SERVICE_CREDENTIALS). Without it, a token stays valid until
   * it expires whatever happens to its session.
   */
  revocations?: {
    serviceId: string;
    serviceSecret: string;
    /** Default 5. */
    intervalSeconds?: number;
    /** Default 60. */
    overlapSeconds?: number;
    /** Refuse tokens with 503 when no poll succeeded for this long; `null` accepts them anyway. Default 60. */
    maxStalenessSeconds?: number | null;
  };
  /** Fastify's logger option (default off). */
  logger?: FastifyServerOptions['logger'];
}

/** What {@link buildDownstream} returns. */
export interface Downstream {
  app: FastifyInstance;
  /** onRequest hook protecting a route: 401/503 unless a valid, unrevoked access token is presented. */
  authenticate: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  /** The revocation poller (`pollNow()`, `status()`), or null without `revocations`. */
  revocations: RevocationFeed | null;
}

const BEARER = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i;

/** The verified claims of the request's access token (set by `authenticate`), or null on a public route. */
export function accessTokenOf(request: FastifyRequest): AccessTokenClaims | null {
  return request.getDecorator<AccessTokenClaims | null>('accessToken');
}

/**
 * Builds a small Fastify service whose routes are protected by tessera access
 * tokens verified locally: keys from tessera's JWKS only, `alg` pinned to
 * RS256, `iss`, `aud` and `typ: at+jwt` pinned, `exp` with a small clock
 * tolerance; anything else gets 401 with `WWW-Authenticate: Bearer
 * error="invalid_token"`. With `revocations`, tokens of ended sessions and of
 * users logged out everywhere are refused too, once a poll has seen them.
 *
 * Routes: `GET /healthz` (public) and `GET /v1/whoami` (protected: the token's
 * claims). Call `app.listen()` (or `app.ready()`) to start the revocation
 * poller; `app.close()` stops it.
 */
export function buildDownstream(options: DownstreamOptions): Downstream {
  const issuer = options.issuer.replace(/\/+$/, '');
  const app = Fastify({ logger: options.logger ?? false });
  const verifierOptions: VerifierOptions = {
    issuer,
    audience: options.audience,
    clockToleranceSeconds: options.clockToleranceSeconds ?? 30,
    jwksCacheSeconds: options.jwksCacheSeconds ?? 60,
    jwksCooldownSeconds: options.jwksCooldownSeconds ?? 10,
    jwksTimeoutSeconds: options.jwksTimeoutSeconds ?? 5,
  };
  const verify: AccessTokenVerifier =
    options.verifier === 'fastify-jwt'
      ? registerFastifyJwtVerifier(app, verifierOptions)
      : createJoseVerifier(verifierOptions);

  const revocations = options.revocations
    ? new RevocationFeed({
        issuer,
        ...options.revocations,
        onError: (error) => app.log.warn({ err: error }, 'revocation feed poll failed; keeping the last state'),
      })
    : null;
  if (revocations) {
    app.addHook('onReady', async () => revocations.start());
    app.addHook('onClose', async () => revocations.stop());
  }

  app.decorateRequest('accessToken', null);

  const reject = (reply: FastifyReply, presented: boolean) =>
    reply
      .code(401)
      // RFC 6750 §3.1: a request that carried no token gets the challenge without an error code.
      .header('www-authenticate', presented ? 'Bearer error="invalid_token"' : 'Bearer')
      .send({ message: presented ? 'the access token is invalid' : 'an access token is required' });
  const unavailable = (reply: FastifyReply) =>
    reply.code(503).header('retry-after', '5').send({ message: 'access tokens cannot be checked right now' });

  const authenticate = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const header = request.headers.authorization;
    if (header === undefined) return reject(reply, false);
    const token = BEARER.exec(header)?.[1];
    if (token === undefined) return reject(reply, true);
    let claims: AccessTokenClaims;
    try {
      claims = await verify(request, token);
    } catch (error) {
      if (error instanceof KeySourceUnavailable) {
        request.log.warn({ err: error.cause }, 'JWKS unavailable');
        return unavailable(reply);
      }
      // The reason goes to the log, not to the caller.
      request.log.info({ reason: error instanceof InvalidToken ? error.message : String(error) }, 'token refused');
      return reject(reply, true);
    }
    if (revocations) {
      // A known revocation wins even over a stale feed: it is still true.
      if (revocations.isRevoked(claims)) {
        request.log.info({ sid: claims.sid }, 'token refused: revoked');
        return reject(reply, true);
      }
      if (!revocations.fresh) return unavailable(reply);
    }
    request.setDecorator('accessToken', claims);
  };

  app.get('/healthz', async () => ({ status: 'ok', revocations: revocations?.status() ?? null }));

  app.get('/v1/whoami', { onRequest: authenticate }, async (request) => {
    const claims = accessTokenOf(request);
    if (!claims) throw new Error('authenticate did not run');
    return {
      sub: claims.sub,
      username: claims.username,
      roles: claims.roles,
      sid: claims.sid,
      client_id: claims.client_id,
    };
  });

  return { app, authenticate, revocations };
}
