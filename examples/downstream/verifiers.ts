import fastifyJwt from '@fastify/jwt';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import buildGetJwks from 'get-jwks';
import { createRemoteJWKSet, errors, type JWTHeaderParameters, type JWTVerifyGetKey, jwtVerify } from 'jose';

/** The only algorithm tessera signs with. Pinned: never taken from the token. */
export const ALGORITHM = 'RS256';
/** RFC 9068 §2.1: access tokens carry `typ: at+jwt`, so no other JWT of the issuer passes as one. */
export const ACCESS_TOKEN_TYPE = 'at+jwt';
/** Claims every tessera access token has; the revocation check needs `sub`, `sid` and `iat`. */
export const REQUIRED_CLAIMS = ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'sid'];

/**
 * Header parameters that name key material or extensions in the token itself
 * (RFC 8725 §3.10, RFC 7515 §4.1.11). Keys come from the issuer's JWKS only, so
 * a token that carries them is refused before any key lookup.
 */
const FORBIDDEN_HEADERS = ['jku', 'jwk', 'x5u', 'x5c', 'crit'];
/** tessera's kids are RFC 7638 thumbprints (43 base64url characters); anything odd never reaches the key cache. */
const KID = /^[A-Za-z0-9_-]{1,128}$/;

/** The claims of a verified tessera access token (RFC 9068). */
export interface AccessTokenClaims {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
  jti: string;
  sid: string;
  client_id: string | undefined;
  username: string | undefined;
  roles: string[];
}

/** The token is not acceptable: the caller gets 401 `invalid_token`. */
export class InvalidToken extends Error {
  override name = 'InvalidToken';
}

/**
 * The JWKS could not be fetched (network error, timeout, non-200, bad JSON): the
 * token may well be valid, so the caller gets 503 rather than a 401 that would
 * only make it refresh and retry.
 */
export class KeySourceUnavailable extends Error {
  override name = 'KeySourceUnavailable';
}

/** Verifies a bearer token for a request; throws {@link InvalidToken} or {@link KeySourceUnavailable}. */
export type AccessTokenVerifier = (request: FastifyRequest, token: string) => Promise<AccessTokenClaims>;

/** What both verifiers pin and how they cache the JWKS; durations in seconds. */
export interface VerifierOptions {
  /** tessera's ISSUER, exactly the tokens' `iss` (no trailing slash). */
  issuer: string;
  /** This service's audience (tessera's AUDIENCE). */
  audience: string;
  /** Clock skew tolerated on `exp` / `nbf`; keep it at most tessera's CLOCK_LEEWAY. */
  clockToleranceSeconds: number;
  /** How long fetched keys are trusted without refetching; at most tessera's JWKS max-age. */
  jwksCacheSeconds: number;
  /** Minimum time between refetches caused by an unknown `kid`, so forged kids cannot flood tessera. */
  jwksCooldownSeconds: number;
  /** Timeout of one JWKS request. */
  jwksTimeoutSeconds: number;
}

/** tessera publishes its keys here (see /.well-known/openid-configuration `jwks_uri`). */
export function jwksUrl(issuer: string): URL {
  return new URL(`${issuer}/.well-known/jwks.json`);
}

/**
 * Header checks done before any key is looked up. The libraries pin `alg` and
 * `typ` themselves too; checking here as well means a token with the wrong
 * header never causes a JWKS request.
 */
function checkHeader(header: Record<string, unknown>): string {
  if (header.alg !== ALGORITHM) throw new InvalidToken('the token must be signed with RS256');
  const typ = typeof header.typ === 'string' ? header.typ.toLowerCase().replace(/^application\//, '') : undefined;
  if (typ !== ACCESS_TOKEN_TYPE) throw new InvalidToken('the token is not an access token (typ at+jwt)');
  if (FORBIDDEN_HEADERS.some((name) => name in header)) throw new InvalidToken('the token header is not accepted');
  if (typeof header.kid !== 'string' || !KID.test(header.kid)) throw new InvalidToken('the token has no usable key id');
  return header.kid;
}

/** Checks the claim types the service relies on; the libraries have already checked their presence and values. */
function toClaims(payload: Record<string, unknown>): AccessTokenClaims {
  const { iss, sub, aud, exp, iat, jti, sid, client_id, username, roles } = payload;
  if (
    typeof iss !== 'string' ||
    typeof sub !== 'string' ||
    typeof exp !== 'number' ||
    typeof iat !== 'number' ||
    typeof jti !== 'string' ||
    typeof sid !== 'string' ||
    !(typeof aud === 'string' || Array.isArray(aud))
  ) {
    throw new InvalidToken('the token claims are malformed');
  }
  return {
    iss,
    sub,
    aud: aud as string | string[],
    exp,
    iat,
    jti,
    sid,
    client_id: typeof client_id === 'string' ? client_id : undefined,
    username: typeof username === 'string' ? username : undefined,
    roles: Array.isArray(roles) ? roles.filter((role): role is string => typeof role === 'string') : [],
  };
}

/**
 * Variant B: jose's `createRemoteJWKSet` + `jwtVerify`. jose caches the JWKS
 * (`cacheMaxAge`), refetches when it meets an unknown `kid` unless it fetched
 * less than `cooldownDuration` ago, and checks `alg`, `typ`, `iss`, `aud`,
 * `exp`/`nbf` (with `clockTolerance`) and the required claims.
 */
export function createJoseVerifier(options: VerifierOptions): AccessTokenVerifier {
  const jwks = createRemoteJWKSet(jwksUrl(options.issuer), {
    cacheMaxAge: options.jwksCacheSeconds * 1000,
    cooldownDuration: options.jwksCooldownSeconds * 1000,
    timeoutDuration: options.jwksTimeoutSeconds * 1000,
  });
  const getKey: JWTVerifyGetKey = async (header: JWTHeaderParameters, token) => {
    checkHeader(header as Record<string, unknown>);
    try {
      return await jwks(header, token);
    } catch (error) {
      // No key with that kid even after a refetch (or within the cooldown): the token's problem.
      if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) {
        throw new InvalidToken('no published key matches the token', { cause: error });
      }
      throw new KeySourceUnavailable('the JWKS could not be fetched', { cause: error });
    }
  };
  return async (_request, token) => {
    try {
      const { payload } = await jwtVerify(token, getKey, {
        algorithms: [ALGORITHM],
        issuer: options.issuer,
        audience: options.audience,
        typ: ACCESS_TOKEN_TYPE,
        clockTolerance: options.clockToleranceSeconds,
        requiredClaims: REQUIRED_CLAIMS,
      });
      return toClaims(payload);
    } catch (error) {
      if (error instanceof InvalidToken || error instanceof KeySourceUnavailable) throw error;
      throw new InvalidToken(error instanceof errors.JWTExpired ? 'the token has expired' : 'the token is invalid', {
        cause: error,
      });
    }
  };
}

/** Rejects after `ms`: get-jwks hands its `timeout` option to fetch, which ignores it. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`the JWKS request took longer than ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Variant A: @fastify/jwt (fast-jwt) with keys from get-jwks, registered on
 * `app`. get-jwks caches each key by (alg, kid, issuer) for `ttl` and fetches
 * the JWKS on every cache miss, so an unknown `kid` is refetched at once. It has
 * no cooldown of its own: here, after a lookup that found no key, kids that are
 * not cached are refused without a request for `jwksCooldownSeconds`.
 *
 * Pinned: the JWKS location comes from our configured issuer, never from the
 * token's `iss` (get-jwks' README example passes `domain: iss`; with
 * `issuersWhitelist` as a second guard). fast-jwt checks `alg`, `typ`
 * (`checkTyp`), `iss`, `aud`, `exp`/`nbf` with `clockTolerance` (milliseconds)
 * and the required claims.
 *
 * get-jwks caveat: when a cached key expires and the refetch fails for any
 * reason, "key no longer published" included, it serves the expired entry once
 * more from its stale cache, so a key tessera revoked keeps verifying for up to
 * twice `jwksCacheSeconds`. Keep that setting short.
 */
export function registerFastifyJwtVerifier(app: FastifyInstance, options: VerifierOptions): AccessTokenVerifier {
  const domain = `${options.issuer}/`;
  const getJwks = buildGetJwks({
    ttl: options.jwksCacheSeconds * 1000,
    issuersWhitelist: [domain],
    jwksPath: '/.well-known/jwks.json',
  });
  // Until then, a kid that is not cached is refused without a request: the last lookup of an
  // unknown kid found nothing in a freshly fetched JWKS.
  let cooldownUntil = Number.NEGATIVE_INFINITY;
  let unknownLookup: Promise<unknown> | null = null;
  // The kids of the JWKS as last fetched after a miss. get-jwks caches only the key
  // it looked up, so without this a forged kid's cooldown would also refuse the
  // genuine current key of a verifier that has not cached it yet.
  let publishedKids = new Set<string>();
  const refreshPublishedKids = async () => {
    try {
      const res = await withTimeout(
        fetch(`${options.issuer}/.well-known/jwks.json`),
        options.jwksTimeoutSeconds * 1000,
      );
      const body = (await res.json()) as { keys?: Array<{ kid?: unknown }> };
      publishedKids = new Set(
        (body.keys ?? []).map((key) => key.kid).filter((kid): kid is string => typeof kid === 'string'),
      );
    } catch {
      // Keep the previous list; the cooldown still protects tessera.
    }
  };

  const cached = (kid: string) => {
    const cacheKey = getJwks.generateCacheKey(ALGORITHM, kid, domain);
    // A kid in the cache (a lookup under way included) or in the stale cache is one tessera published.
    return getJwks.cache.get(cacheKey) !== undefined || getJwks.staleCache.get(cacheKey) !== undefined;
  };

  const fetchKey = async (kid: string): Promise<string> => {
    try {
      return await withTimeout(
        getJwks.getPublicKey({ domain: options.issuer, alg: ALGORITHM, kid }),
        options.jwksTimeoutSeconds * 1000,
      );
    } catch (error) {
      if ((error as { code?: unknown }).code === 'JWK_NOT_FOUND') {
        cooldownUntil = Date.now() + options.jwksCooldownSeconds * 1000;
        await refreshPublishedKids();
        throw new InvalidToken('no published key matches the token', { cause: error });
      }
      throw new KeySourceUnavailable('the JWKS could not be fetched', { cause: error });
    }
  };

  const publicKey = async (kid: string): Promise<string> => {
    if (cached(kid)) return fetchKey(kid);
    // One unknown kid at a time: a burst of forged kids waits for the first one's verdict
    // (and its cooldown) instead of costing tessera one JWKS request each.
    while (unknownLookup) await unknownLookup;
    if (cached(kid)) return fetchKey(kid);
    if (Date.now() < cooldownUntil && !publishedKids.has(kid)) {
      throw new InvalidToken('unknown key id (the JWKS was refetched moments ago)');
    }
    const lookup = fetchKey(kid);
    const settled = lookup.then(
      () => {},
      () => {},
    );
    unknownLookup = settled;
    try {
      return await lookup;
    } finally {
      if (unknownLookup === settled) unknownLookup = null;
    }
  };

  // @fastify/jwt reads the token through `extractToken`; the hook has already parsed the header.
  const presented = new WeakMap<FastifyRequest, string>();
  app.register(fastifyJwt, {
    secret: {
      public: async (_request: FastifyRequest, token: unknown) =>
        publicKey(checkHeader((token as { header?: Record<string, unknown> }).header ?? {})),
    },
    decode: { complete: true },
    verify: {
      algorithms: [ALGORITHM],
      allowedIss: options.issuer,
      allowedAud: options.audience,
      checkTyp: ACCESS_TOKEN_TYPE,
      clockTolerance: options.clockToleranceSeconds * 1000,
      requiredClaims: REQUIRED_CLAIMS,
      extractToken: (request: FastifyRequest) => presented.get(request),
    },
  });

  return async (request, token) => {
    presented.set(request, token);
    try {
      return toClaims(await request.jwtVerify<Record<string, unknown>>());
    } catch (error) {
      if (error instanceof InvalidToken || error instanceof KeySourceUnavailable) throw error;
      const expired = (error as { code?: unknown }).code === 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED';
      throw new InvalidToken(expired ? 'the token has expired' : 'the token is invalid', { cause: error });
    } finally {
      presented.delete(request);
    }
  };
}
