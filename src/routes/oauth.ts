import cookie from '@fastify/cookie';
import formbody from '@fastify/formbody';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
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
    refresh_token: Type.Optional(
      Type.String({ description: 'refresh_token grant (in browser cookie mode it comes from the cookie instead)' }),
    ),
    scope: Type.Optional(Type.String()),
    client_id: Type.Optional(Type.String()),
  },
  { description: 'RFC 6749 token request, as application/x-www-form-urlencoded or application/json' },
);

const TokenResponse = Type.Object({
  access_token: Type.String(),
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer(),
  refresh_token: Type.Optional(
    Type.String({ description: 'Absent in browser cookie mode: the refresh token is in an HttpOnly cookie then' }),
  ),
});

const RevokeRequest = Type.Object({
  token: Type.Optional(
    Type.String({
      description: 'The refresh or access token to revoke (in browser cookie mode: the cookie, if absent)',
    }),
  ),
  token_type_hint: Type.Optional(Type.String()),
  client_id: Type.Optional(Type.String()),
});

/** RFC 6749 token endpoint and RFC 7009 revocation endpoint. */
const oauthRoutes: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, { config }) => {
  await app.register(formbody);
  const cookieMode = config.refreshCookie;
  // Only in cookie mode: otherwise nothing reads or sets a cookie, and the
  // plugin's two hooks would still run on every token request.
  if (cookieMode.enabled) await app.register(cookie);
  // The pages allowed to use the refresh cookie: ALLOWED_ORIGINS and the issuer's own origin.
  const trustedOrigins = new Set([...config.allowedOrigins, new URL(config.issuer).origin]);
  const cookieOptions = {
    httpOnly: true,
    secure: cookieMode.secure,
    sameSite: 'strict' as const,
    // Only the token and revocation endpoints ever see it.
    path: '/oauth',
  };
  /** A request from a web page (browsers send Origin on every POST) in cookie mode. */
  const fromBrowser = (request: FastifyRequest) => cookieMode.enabled && request.headers.origin !== undefined;
  /** The cookie's value as sent (whatever the origin), to tell whether a presented token is the cookie's. */
  const sentCookie = (request: FastifyRequest): string | undefined =>
    cookieMode.enabled ? request.cookies[cookieMode.name] : undefined;
  /**
   * The refresh token from the cookie, for a request from a trusted page only:
   * SameSite=Strict already keeps other sites' requests from carrying it, and
   * the Origin check refuses the rest (CSRF, OWASP ASVS V3.5).
   */
  const tokenFromCookie = (request: FastifyRequest): string | undefined => {
    if (!cookieMode.enabled) return undefined;
    const token = request.cookies[cookieMode.name];
    if (token === undefined) return undefined;
    const origin = request.headers.origin;
    if (!origin || !trustedOrigins.has(origin)) {
      throw new OAuthError('invalid_request', 'the refresh cookie is only accepted from a trusted origin', 403);
    }
    return token;
  };
  const clearCookie = (reply: FastifyReply) => reply.clearCookie(cookieMode.name, cookieOptions);

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
          403: OAuthErrorRef,
          413: OAuthErrorRef,
          415: OAuthErrorRef,
          429: OAuthErrorRef,
          503: OAuthErrorRef,
        },
      },
    },
    async (request, reply) => {
      const body = request.body;
      const respond = (tokens: {
        access_token: string;
        token_type: 'Bearer';
        expires_in: number;
        refresh_token: string;
      }) => {
        if (!fromBrowser(request)) return tokens;
        // Browser mode: the refresh token never reaches JavaScript.
        reply.setCookie(cookieMode.name, tokens.refresh_token, { ...cookieOptions, maxAge: config.refreshTokenTtl });
        const { refresh_token: _hidden, ...visible } = tokens;
        return visible;
      };
      checkClient(body.client_id);
      reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
      // Login CSRF: a page elsewhere could post its own credentials here (a top-level
      // form POST) and plant its session's cookie in the user's browser; a cookie
      // set in reply to any page but a trusted one would be such a plant.
      if (fromBrowser(request) && !trustedOrigins.has(request.headers.origin ?? '')) {
        throw new OAuthError(
          'invalid_request',
          'in browser cookie mode, tokens are issued to pages of a trusted origin only (ALLOWED_ORIGINS)',
          403,
        );
      }
      if (body.grant_type === 'password') {
        if (!body.username || !body.password) {
          throw new OAuthError('invalid_request', 'the password grant needs username and password');
        }
        return respond(
          await app.services.tokens.passwordGrant(body.username, body.password, {
            userAgent: request.headers['user-agent'] ?? null,
            ipAddress: request.ip,
            requestId: String(request.id),
            // A queued login whose client has disconnected is not worth a hash.
            abandoned: () => request.raw.socket?.destroyed === true,
          }),
        );
      }
      if (body.grant_type === 'refresh_token') {
        const token = body.refresh_token ?? tokenFromCookie(request);
        if (!token) throw new OAuthError('invalid_request', 'the refresh_token grant needs refresh_token');
        try {
          return respond(await app.services.tokens.refreshGrant(token, auditContext(request)));
        } catch (error) {
          // A dead cookie is useless to the page: drop it. Only the cookie's own
          // token tells that it is dead; another token that fails says nothing about it.
          const cookieWasUsed = token === sentCookie(request);
          if (fromBrowser(request) && cookieWasUsed && error instanceof OAuthError && error.error === 'invalid_grant')
            clearCookie(reply);
          throw error;
        }
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
        summary: 'Revoke a refresh or access token and end its session (RFC 7009)',
        description:
          'Either token ends the session it belongs to (an access token is then in the revocation feed). Answers 200 whether or not the token was valid (RFC 7009 §2.2).',
        consumes: ['application/x-www-form-urlencoded', 'application/json'],
        body: RevokeRequest,
        response: {
          200: Type.Object({}),
          400: OAuthErrorRef,
          401: OAuthErrorRef,
          403: OAuthErrorRef,
          413: OAuthErrorRef,
          415: OAuthErrorRef,
          503: OAuthErrorRef,
        },
      },
    },
    async (request, reply) => {
      checkClient(request.body.client_id);
      const token = request.body.token ?? tokenFromCookie(request);
      if (!token) throw new OAuthError('invalid_request', 'token is required');
      // Logging out ends the cookie's session, so the cookie goes with it; revoking
      // some other token leaves the page's own session, and its cookie, alone.
      if (fromBrowser(request) && trustedOrigins.has(request.headers.origin ?? '') && token === sentCookie(request))
        clearCookie(reply);
      const { sessions, introspection } = app.services;
      let ended: { sessionId: string; userId: string } | null = null;
      if (introspection.looksLikeAccessToken(token)) {
        // An access token (RFC 7009 §2: SHOULD be supported) ends its session; one
        // that does not verify is ignored like any invalid token (§2.2).
        const verified = await app.verifyAccessToken(request, token);
        if (verified.ok) ended = await sessions.revokeByAccessToken(verified.claims);
      } else ended = await sessions.revokeByToken(token);
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
