import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ProblemRef } from '../schemas.js';

const Readiness = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  checks: Type.Object({
    database: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
    signingKey: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  }),
});

/** Liveness and readiness probes. */
const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get(
    '/healthz',
    {
      logLevel: 'warn',
      schema: {
        tags: ['health'],
        summary: 'The process is alive',
        response: { 200: Type.Object({ status: Type.Literal('ok') }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      logLevel: 'warn',
      schema: {
        tags: ['health'],
        summary: 'The database is reachable and a signing key is loaded',
        description:
          'A 503 is not ready: either the checks (a failed one) or, while the instance sheds load or shuts down, problem details.',
        // Shedding and shutdown answer every route, this one too, with problem details.
        response: { 200: Readiness, 503: Type.Union([Readiness, ProblemRef]) },
      },
    },
    async (_request, reply) => {
      const database = await app.db.ping().then(
        () => 'ok' as const,
        () => 'unavailable' as const,
      );
      const signingKey = app.keyStore.ready ? ('ok' as const) : ('unavailable' as const);
      const ready = database === 'ok' && signingKey === 'ok';
      return reply
        .code(ready ? 200 : 503)
        .send({ status: ready ? 'ok' : 'unavailable', checks: { database, signingKey } });
    },
  );
};

export default healthRoutes;
