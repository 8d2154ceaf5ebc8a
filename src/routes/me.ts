import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ProblemError } from '../errors.js';
import { auditContext } from '../plugins/audit.js';
import { Password, parseTimestamp, problems } from '../schemas.js';
import { Me } from './users.js';

const bearer = [{ bearerAuth: [] }];

/** The signed-in user's own account. */
const meRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/me',
    {
      onRequest: app.authenticate,
      schema: {
        tags: ['account'],
        summary: 'The user the access token belongs to',
        security: bearer,
        response: { 200: Me, ...problems(400, 401, 503) },
      },
    },
    async (request) => {
      const user = await app.services.users.findById(request.user.sub);
      if (!user || user.disabledAt) throw new ProblemError('unauthorized', 'the account is not active');
      return { id: user.id, username: user.username, roles: user.roles, createdAt: user.createdAt.toISOString() };
    },
  );

  app.get(
    '/v1/me/audit',
    {
      onRequest: app.authenticate,
      schema: {
        tags: ['account'],
        summary: 'The security history of the caller’s account (logins, password changes, revocations), newest first',
        security: bearer,
        querystring: Type.Object(
          {
            // Query strings are text; bodies are validated without type coercion, so the number is a pattern.
            limit: Type.Optional(
              Type.String({ pattern: '^(100|[1-9][0-9]?)$', description: 'Events per page, 1 to 100 (50)' }),
            ),
            before: Type.Optional(Type.String({ format: 'date-time', description: 'Page: events before this time' })),
          },
          // Other query parameters (a cache-buster such as `_=`) are ignored, as on every route.
        ),
        response: { 200: Type.Object({ events: Type.Array(AuditEntry) }), ...problems(400, 401, 503) },
      },
    },
    async (request) => {
      const { limit = '50', before } = request.query;
      const events = await app.audit.listForUser(
        request.user.sub,
        Number(limit),
        before === undefined ? undefined : parseTimestamp('before', before),
      );
      return {
        events: events.map((event) => ({
          ...event,
          details: event.details as Record<string, string | number | boolean | null>,
          createdAt: event.createdAt.toISOString(),
        })),
      };
    },
  );

  app.post(
    '/v1/me/password',
    {
      onRequest: app.authenticate,
      schema: {
        tags: ['account'],
        summary: 'Change the password; every other session of the user ends',
        security: bearer,
        body: Type.Object(
          { currentPassword: Type.String({ minLength: 1, maxLength: 1024 }), newPassword: Password },
          { additionalProperties: false },
        ),
        response: { 204: Type.Null(), ...problems(400, 401, 413, 415, 429, 503) },
      },
    },
    async (request, reply) => {
      const { currentPassword, newPassword } = request.body;
      await app.services.users.changePassword(request.user.sub, request.user.sid, currentPassword, newPassword);
      await app.audit.record({
        type: 'password_changed',
        userId: request.user.sub,
        sessionId: request.user.sid,
        ...auditContext(request),
        details: { otherSessionsEnded: true },
      });
      return reply.code(204).send(null);
    },
  );
};

export default meRoutes;

const AuditEntry = Type.Object({
  id: Type.String(),
  type: Type.String({ description: 'login_succeeded, login_failed, refresh_token_reuse, password_changed, …' }),
  sessionId: Type.Union([Type.String(), Type.Null()]),
  ipAddress: Type.Union([Type.String(), Type.Null()]),
  userAgent: Type.Union([Type.String(), Type.Null()]),
  details: Type.Record(Type.String(), Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()])),
  createdAt: Type.String({ format: 'date-time' }),
});
