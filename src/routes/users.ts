import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Config } from '../config.js';
import { ProblemError } from '../errors.js';
import { auditContext } from '../plugins/audit.js';
import type { UserRecord } from '../repositories/user-repository.js';
import { Password, problems, Timestamp, Username } from '../schemas.js';

export const PublicUser = Type.Object({
  id: Type.String({ format: 'uuid' }),
  username: Type.String(),
  createdAt: Timestamp,
});

export const Me = Type.Object({
  id: Type.String({ format: 'uuid' }),
  username: Type.String(),
  roles: Type.Array(Type.String()),
  createdAt: Timestamp,
});

/** Maps a stored user to the fields allowed out. */
export function publicUser(user: UserRecord) {
  return { id: user.id, username: user.username, createdAt: user.createdAt.toISOString() };
}

/** Self-registration. */
const userRoutes: FastifyPluginAsyncTypebox<{ config: Config }> = async (app, { config }) => {
  app.post(
    '/v1/users',
    {
      schema: {
        tags: ['users'],
        summary: 'Register a user',
        body: Type.Object({ username: Username, password: Password }, { additionalProperties: false }),
        response: { 201: PublicUser, ...problems(400, 403, 409, 413, 415, 429, 503) },
      },
    },
    async (request, reply) => {
      if (!config.allowRegistration) throw new ProblemError('registration_disabled');
      const user = await app.services.users.register(request.body.username, request.body.password);
      await app.audit.record({ type: 'user_registered', userId: user.id, ...auditContext(request) });
      return reply.code(201).send(publicUser(user));
    },
  );
};

export default userRoutes;
