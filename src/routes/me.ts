import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ProblemError } from '../errors.js';
import { Password, problems } from '../schemas.js';
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
        response: { 200: Me, ...problems(401, 503) },
      },
    },
    async (request) => {
      const user = await app.services.users.findById(request.user.sub);
      if (!user || user.disabledAt) throw new ProblemError('unauthorized', 'the account is not active');
      return { id: user.id, username: user.username, roles: user.roles, createdAt: user.createdAt.toISOString() };
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
        response: { 204: Type.Null(), ...problems(400, 401, 413, 415, 503) },
      },
    },
    async (request, reply) => {
      const { currentPassword, newPassword } = request.body;
      await app.services.users.changePassword(request.user.sub, request.user.sid, currentPassword, newPassword);
      return reply.code(204).send(null);
    },
  );
};

export default meRoutes;
