import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { parseTimestamp, problems, Timestamp } from '../schemas.js';

const RevocationFeed = Type.Object(
  {
    now: Timestamp,
    windowStart: Type.String({
      format: 'date-time',
      description: 'now − (ACCESS_TOKEN_TTL + CLOCK_LEEWAY); older entries are omitted',
    }),
    sessions: Type.Array(Type.Object({ sid: Type.String(), revokedAt: Timestamp }), {
      description: 'An access token whose `sid` is listed is revoked',
    }),
    users: Type.Array(Type.Object({ sub: Type.String(), revokedBefore: Timestamp }), {
      description: 'An access token whose `sub` is listed is revoked when `iat * 1000 < Date.parse(revokedBefore)`',
    }),
  },
  { description: 'Revocations that can still affect unexpired access tokens' },
);

/** The revocation feed for services that verify access tokens locally (see README). */
const revocationRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/v1/revocations',
    {
      onRequest: app.authenticateService,
      schema: {
        tags: ['revocations'],
        security: [{ serviceAuth: [] }],
        summary: 'Revoked sessions and users, for services that verify access tokens locally',
        description:
          'HTTP Basic with a SERVICE_CREDENTIALS pair. Poll it (it may be cached for 5 s) and reject access ' +
          'tokens whose `sid` is listed, or whose `sub` is listed with `iat * 1000 < revokedBefore`.',
        querystring: Type.Object({
          since: Type.Optional(
            Type.String({
              format: 'date-time',
              description:
                'Only entries after this instant (RFC 3339 date-time with a time zone, e.g. a previous `now`)',
            }),
          ),
        }),
        response: { 200: RevocationFeed, ...problems(400, 401, 503) },
      },
    },
    async (request, reply) => {
      const { since } = request.query;
      const sinceDate = since === undefined ? undefined : parseTimestamp('since', since);
      const feed = await app.services.revocations.feed(sinceDate);
      // Verifiers poll; five seconds of caching bounds the load without delaying revocation much.
      reply.header('cache-control', 'private, max-age=5');
      return feed;
    },
  );
};

export default revocationRoutes;
