import formbody from '@fastify/formbody';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { OAuthError } from '../errors.js';
import { SERVICE_CHALLENGE } from '../plugins/service-auth.js';
import { OAuthErrorRef } from '../schemas.js';
import { INACTIVE } from '../services/introspection-service.js';

const IntrospectionRequest = Type.Object(
  {
    token: Type.String({ description: 'The access token or refresh token to introspect' }),
    token_type_hint: Type.Optional(
      Type.String({
        description: '`access_token` or `refresh_token`; accepted and not needed (the two formats cannot be confused)',
      }),
    ),
    client_id: Type.Optional(Type.String({ description: 'client_secret_post authentication (RFC 6749 §2.3.1)' })),
    client_secret: Type.Optional(Type.String({ description: 'client_secret_post authentication (RFC 6749 §2.3.1)' })),
  },
  { description: 'RFC 7662 §2.1 request, as application/x-www-form-urlencoded or application/json' },
);

// The response schemas are the allow-list of what leaves: one shape per kind of answer.
const Inactive = Type.Object({ active: Type.Literal(false) }, { description: 'Invalid, expired or revoked' });

const ActiveAccessToken = Type.Object(
  {
    active: Type.Literal(true),
    token_type: Type.Literal('Bearer'),
    client_id: Type.String(),
    username: Type.String(),
    sub: Type.String(),
    aud: Type.Union([Type.String(), Type.Array(Type.String())]),
    iss: Type.String(),
    exp: Type.Integer(),
    iat: Type.Integer(),
    jti: Type.String(),
    sid: Type.String(),
    roles: Type.Array(Type.String()),
  },
  { description: 'An active access token' },
);

const ActiveRefreshToken = Type.Object(
  {
    active: Type.Literal(true),
    token_type: Type.Literal('refresh_token'),
    client_id: Type.String(),
    username: Type.String(),
    sub: Type.String(),
    sid: Type.String(),
    exp: Type.Integer({ description: 'When the token stops working unused' }),
  },
  { description: 'The current refresh token of an active session' },
);

/** RFC 7662 token introspection, for services that would rather ask than verify locally. */
const introspectionRoutes: FastifyPluginAsyncTypebox = async (app) => {
  await app.register(formbody);

  app.post(
    '/oauth/introspect',
    {
      config: { oauth: true },
      schema: {
        tags: ['oauth'],
        security: [{ serviceAuth: [] }],
        summary: 'Introspect an access or refresh token (RFC 7662)',
        description:
          'Client authentication with a SERVICE_CREDENTIALS pair: HTTP Basic (client_secret_basic) or ' +
          '`client_id` + `client_secret` in the body (client_secret_post). Any token that is not active ' +
          'answers `{"active": false}`. Introspecting a refresh token does not rotate it.',
        consumes: ['application/x-www-form-urlencoded', 'application/json'],
        body: IntrospectionRequest,
        response: {
          200: Type.Union([Inactive, ActiveAccessToken, ActiveRefreshToken]),
          400: OAuthErrorRef,
          401: OAuthErrorRef,
          413: OAuthErrorRef,
          415: OAuthErrorRef,
          503: OAuthErrorRef,
        },
      },
    },
    async (request, reply) => {
      const body = request.body;
      // RFC 7662 §2.1: the protected resource must authenticate; RFC 6749 §5.2:
      // a failed client authentication is 401 invalid_client with a challenge.
      const client = app.serviceAuth.authenticateClient(request, body);
      if (!client.ok) {
        if (client.error === 'invalid_client') {
          request.log.warn('introspection client authentication failed');
          reply.header('www-authenticate', SERVICE_CHALLENGE);
        }
        throw new OAuthError(client.error, client.description);
      }
      request.serviceId = client.serviceId;
      // RFC 7662 §2.2 responses carry token state: never cache them.
      reply.header('cache-control', 'no-store').header('pragma', 'no-cache');

      const { token } = body;
      const { introspection } = app.services;
      if (token.length === 0) return INACTIVE;
      if (introspection.looksLikeAccessToken(token)) {
        const verified = await app.verifyAccessToken(request, token);
        return verified.ok ? introspection.describeAccessToken(verified.claims) : INACTIVE;
      }
      return introspection.introspectRefreshToken(token);
    },
  );
};

export default introspectionRoutes;
