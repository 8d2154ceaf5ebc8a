import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { ProblemError } from '../errors.js';

/**
 * Per-client-IP request limits on the routes that cost a password hash:
 * the token endpoint, registration and password change. Counters live in
 * Redis when REDIS_URL is set (shared by all instances), else in memory.
 * Behind a reverse proxy, TRUST_PROXY makes `request.ip` the client's address.
 */
export default fp(
  async function rateLimits(app: FastifyInstance, options: { config: Config }) {
    const { rateLimits: limits } = options.config;
    const perRoute: Record<string, number> = {
      'POST /oauth/token': limits.token,
      'POST /v1/users': limits.register,
      'POST /v1/me/password': limits.password,
    };
    // Attach each route's limit before @fastify/rate-limit's own onRoute hook reads it.
    app.addHook('onRoute', (route) => {
      const methods = Array.isArray(route.method) ? route.method : [route.method];
      const max = methods.map((method) => perRoute[`${method} ${route.url}`]).find((value) => value !== undefined);
      if (max) route.config = { ...(route.config ?? {}), rateLimit: { max, timeWindow: 60_000 } };
    });
    await app.register(rateLimit, {
      global: false,
      ...(app.redis ? { redis: app.redis, nameSpace: 'tessera:rate:' } : {}),
      // A Redis outage must not take logins down with it.
      skipOnError: true,
      errorResponseBuilder: (_request, context) =>
        new ProblemError('too_many_requests', `rate limit of ${context.max} requests per minute exceeded`, {
          'retry-after': String(Math.max(1, Math.ceil(context.ttl / 1000))),
        }),
    });
  },
  { name: 'rate-limit', dependencies: ['redis', 'error-handler'] },
);
