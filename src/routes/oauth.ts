import formbody from '@fastify/formbody';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Config } from '../config.js';
import { OAuthError } from '../errors.js';
import { auditContext } from '../plugins/audit.js';
import { OAuthErrorRef } from '../schemas.js';

const TokenRequest = Type.Object(
  {
    grant_type: Type.String({ minLength: 1, description: '`password` or `refresh_token`' }),
    username: Type.Optional(Type.String({ description: 'password grant' })),
    password: Type.Optional(Type.String({ description: 'password grant' })),
    refresh_token: Type.Optional(Type.String({ description: 'refresh_token grant' })),
    scope: Type.Optional(Type.String()),
    client_id: Type.Optional(Type.String()),
  },
  { description: 'RFC 6749 token request, as application/x-www-form-urlencoded or application/json' },
);

const TokenResponse = Type.Object({
  access_token: Type.String(),
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer(),
  refresh_token: Type.String(),
});

const RevokeRequest = Type.Object({
  token: Type.String({ description: 'The refresh token to revoke' }),
  token_type_hint: Type.Optional(Type.String()),
  client_id: Type.Optional(Type.String()),
});

/** RFC 6749 token endpoint and RFC 7009 revocation endpoint. */
const oauthRoutes: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, { config }) => {
  await app.register(formbody);

  const checkClient = (clientId: string | undefined) => {
    if (clientId !== undefined && clientId !== config.clientId)
      throw new OAuthError('invalid_client', 'unknown client_id');
  };

  app.post(
    '/oauth/token',
    {
      config: { oauth: true },
      schema: {
        tags: ['oauth'],
        summary: 'Issue tokens (password and refresh_token grants)',
        consumes: ['application/x-www-form-urlencoded', 'application/json'],
        body: TokenRequest,
        response: {
          200: TokenResponse,
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
      checkClient(body.client_id);
      reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
      if (body.grant_type === 'password') {
        if (!body.username || !body.password) {
          throw new OAuthError('invalid_request', 'the password grant needs username and password');
        }
        return app.services.tokens.passwordGrant(body.username, body.password, {
          userAgent: request.headers['user-agent'] ?? null,
          ipAddress: request.ip,
          requestId: String(request.id),
        });
      }
      if (body.grant_type === 'refresh_token') {
        if (!body.refresh_token) throw new OAuthError('invalid_request', 'the refresh_token grant needs refresh_token');
        return app.services.tokens.refreshGrant(body.refresh_token, auditContext(request));
      }
      throw new OAuthError('unsupported_grant_type', 'grant_type must be password or refresh_token');
    },
  );

  app.post(
    '/oauth/revoke',
    {
      config: { oauth: true },
      schema: {
        tags: ['oauth'],
        summary: 'Revoke a refresh token and end its session (RFC 7009)',
        description: 'Answers 200 whether or not the token was valid (RFC 7009 §2.2).',
        consumes: ['application/x-www-form-urlencoded', 'application/json'],
        body: RevokeRequest,
        response: {
          200: Type.Object({}),
          400: OAuthErrorRef,
          401: OAuthErrorRef,
          413: OAuthErrorRef,
          415: OAuthErrorRef,
          503: OAuthErrorRef,
        },
      },
    },
    async (request, reply) => {
      checkClient(request.body.client_id);
      const ended = await app.services.sessions.revokeByToken(request.body.token);
      if (ended) {
        await app.audit.record({
          type: 'session_revoked',
          ...ended,
          ...auditContext(request),
          details: { reason: 'logout' },
        });
      }
      reply.header('cache-control', 'no-store');
      return {};
    },
  );
};

export default oauthRoutes;
