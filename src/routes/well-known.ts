import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Config } from '../config.js';
import { SIGNING_ALGORITHM } from '../keys/key-store.js';

const Jwk = Type.Object({
  kty: Type.Literal('RSA'),
  n: Type.String(),
  e: Type.String(),
  kid: Type.String(),
  use: Type.Literal('sig'),
  alg: Type.Literal('RS256'),
});

const Metadata = Type.Object({
  issuer: Type.String(),
  jwks_uri: Type.String(),
  token_endpoint: Type.String(),
  revocation_endpoint: Type.String(),
  introspection_endpoint: Type.String(),
  grant_types_supported: Type.Array(Type.String()),
  response_types_supported: Type.Array(Type.String()),
  token_endpoint_auth_methods_supported: Type.Array(Type.String()),
  revocation_endpoint_auth_methods_supported: Type.Array(Type.String()),
  introspection_endpoint_auth_methods_supported: Type.Array(Type.String()),
  subject_types_supported: Type.Array(Type.String()),
  id_token_signing_alg_values_supported: Type.Array(Type.String()),
  access_token_signing_alg_values_supported: Type.Array(Type.String()),
  claims_supported: Type.Array(Type.String()),
});

/** The JWKS route's path (RFC 8414 `jwks_uri`). */
export const JWKS_PATH = '/.well-known/jwks.json';

/** The JWKS body's media type. */
export const JWKS_CONTENT_TYPE = 'application/json; charset=utf-8';

/** Cache-Control of the discovery documents and the JWKS (JWKS_MAX_AGE, capped by the key schedule). */
export function discoveryCacheControl(config: Pick<Config, 'jwksMaxAge'>): string {
  return `public, max-age=${config.jwksMaxAge}`;
}

/**
 * Whether an If-None-Match header matches `etag`, with the weak comparison of
 * RFC 9110 §13.1.2 / §8.8.3.2: `*` matches any current representation, and a
 * list matches when any member's opaque tag, `W/` or not, equals the ETag's.
 * Splitting on commas is exact for our ETags (base64url, no comma): an
 * entity-tag with a comma in it splits into pieces that cannot equal ours.
 */
export function ifNoneMatchMatches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === '*') return true;
  const opaque = (tag: string) => (tag.startsWith('W/') ? tag.slice(2) : tag);
  const ours = opaque(etag);
  return header.split(',').some((member) => opaque(member.trim()) === ours);
}

/** RFC 8414 / OpenID Connect Discovery metadata, and the JWKS (RFC 7517). */
const wellKnownRoutes: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, { config }) => {
  const metadata = {
    issuer: config.issuer,
    jwks_uri: `${config.issuer}${JWKS_PATH}`,
    token_endpoint: `${config.issuer}/oauth/token`,
    revocation_endpoint: `${config.issuer}/oauth/revoke`,
    introspection_endpoint: `${config.issuer}/oauth/introspect`,
    grant_types_supported: ['password', 'refresh_token'],
    // No authorization endpoint: tessera has no browser redirect flow.
    response_types_supported: [],
    token_endpoint_auth_methods_supported: ['none'],
    revocation_endpoint_auth_methods_supported: ['none'],
    // RFC 7662 §2.1: services authenticate with a SERVICE_CREDENTIALS pair.
    introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [SIGNING_ALGORITHM],
    access_token_signing_alg_values_supported: [SIGNING_ALGORITHM],
    claims_supported: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id', 'sid', 'username', 'roles'],
  };
  const cacheControl = discoveryCacheControl(config);
  const metadataSchema = {
    tags: ['discovery'],
    response: { 200: Metadata },
  };
  for (const path of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
    // Hot, cacheable GETs: no per-request access-log lines (errors are still logged).
    app.get(
      path,
      { logLevel: 'warn', schema: { ...metadataSchema, summary: 'Server metadata' } },
      async (_request, reply) => {
        reply.header('cache-control', cacheControl);
        return metadata;
      },
    );
  }

  app.get(
    JWKS_PATH,
    {
      // Verifiers poll it: no per-request access-log lines (errors are still logged).
      logLevel: 'warn',
      schema: {
        tags: ['discovery'],
        summary: 'Public signing keys (JWKS)',
        description: 'Public RSA keys only. Supports If-None-Match; served from memory.',
        response: { 200: Type.Object({ keys: Type.Array(Jwk) }), 304: Type.Null() },
      },
    },
    async (request, reply) => {
      const { body, etag } = app.keyStore.jwks;
      reply.header('cache-control', cacheControl).header('etag', etag);
      if (ifNoneMatchMatches(request.headers['if-none-match'], etag)) return reply.code(304).send(null);
      // Pre-serialized when the key set changes; Fastify sends a string body as is
      // (the cast only tells the type provider so; the schema still documents it).
      return reply.type(JWKS_CONTENT_TYPE).send(body as unknown as { keys: never[] });
    },
  );
};

export default wellKnownRoutes;
