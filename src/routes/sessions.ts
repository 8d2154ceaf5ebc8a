import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ProblemError } from '../errors.js';
import { auditContext } from '../plugins/audit.js';
import { problems, Timestamp } from '../schemas.js';

const Session = Type.Object({
  id: Type.String({ format: 'uuid' }),
  createdAt: Timestamp,
  lastUsedAt: Timestamp,
  expiresAt: Timestamp,
  userAgent: Type.Union([Type.String(), Type.Null()]),
  ipAddress: Type.Union([Type.String(), Type.Null()]),
  current: Type.Boolean({ description: 'The session of the access token making this request' }),
});

const bearer = [{ bearerAuth: [] }];

/** The signed-in user's sessions: list, end one, end all. */
const sessionRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/sessions',
    {
      onRequest: app.authenticate,
      schema: {
        tags: ['sessions'],
        summary: "The caller's active sessions",
        security: bearer,
        response: { 200: Type.Object({ sessions: Type.Array(Session) }), ...problems(400, 401, 503) },
      },
    },
    async (request) => {
      const sessions = await app.services.sessions.list(request.user.sub);
      return {
        sessions: sessions.map((session) => ({
          id: session.id,
          createdAt: session.createdAt.toISOString(),
          lastUsedAt: session.lastRotatedAt.toISOString(),
          expiresAt: session.expiresAt.toISOString(),
          userAgent: session.userAgent,
          ipAddress: session.ipAddress,
          current: session.id === request.user.sid,
        })),
      };
    },
  );

  app.delete(
    '/v1/sessions/:id',
    {
      onRequest: app.authenticate,
      schema: {
        tags: ['sessions'],
        summary: 'End one of the caller’s sessions',
        security: bearer,
        params: Type.Object({ id: Type.String({ format: 'uuid' }) }),
        response: { 204: Type.Null(), ...problems(400, 401, 404, 503) },
      },
    },
    async (request, reply) => {
      const ended = await app.services.sessions.revoke(request.user.sub, request.params.id);
      if (!ended) throw new ProblemError('not_found', 'no active session with that id');
      await app.audit.record({
        type: 'session_revoked',
        userId: request.user.sub,
        sessionId: request.params.id,
        ...auditContext(request),
        details: { reason: 'revoked_by_user' },
      });
      return reply.code(204).send(null);
    },
  );

  app.delete(
    '/v1/sessions',
    {
      onRequest: app.authenticate,
      schema: {
        tags: ['sessions'],
        summary: 'Log out everywhere: end every session of the caller',
        security: bearer,
        response: { 204: Type.Null(), ...problems(400, 401, 503) },
      },
    },
    async (request, reply) => {
      const count = await app.services.sessions.revokeAll(request.user.sub);
      await app.audit.record({
        type: 'sessions_revoked',
        userId: request.user.sub,
        sessionId: request.user.sid,
        ...auditContext(request),
        details: { reason: 'logout_all', count },
      });
      return reply.code(204).send(null);
    },
  );
};

export default sessionRoutes;
