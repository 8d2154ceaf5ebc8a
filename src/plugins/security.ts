import cors from '@fastify/cors';
import helmet from '@fastify/helmet';
import underPressure from '@fastify/under-pressure';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { ProblemError } from '../errors.js';

/** Routes that keep answering under pressure: liveness and what downstream verifiers need. */
const NEVER_SHED = new Set([
  '/healthz',
  '/metrics',
  '/.well-known/jwks.json',
  '/.well-known/openid-configuration',
  '/.well-known/oauth-authorization-server',
]);

/**
 * Browser-facing and overload protections: security headers (helmet), CORS
 * for the configured origins only, and load shedding (under-pressure) on
 * event-loop delay and heap size, answered with 503 + Retry-After.
 */
export default fp(
  async function security(app: FastifyInstance, options: { config: Config }) {
    const { config } = options;
    await app.register(helmet, {
      // An API: no HTML except /docs, which needs its own inline assets.
      contentSecurityPolicy: false,
      crossOriginResourcePolicy: { policy: 'cross-origin' },
      hsts: config.issuer.startsWith('https://') ? { maxAge: 31_536_000, includeSubDomains: true } : false,
    });
    await app.register(cors, {
      origin: config.allowedOrigins.length > 0 ? config.allowedOrigins : false,
      credentials: true,
      methods: ['GET', 'POST', 'DELETE'],
      allowedHeaders: ['authorization', 'content-type', 'x-request-id'],
      exposedHeaders: ['x-request-id', 'retry-after', 'www-authenticate'],
      maxAge: 600,
    });
    await app.register(underPressure, {
      maxEventLoopDelay: config.pressure.maxEventLoopDelay,
      maxHeapUsedBytes: config.pressure.maxHeapUsedBytes,
      sampleInterval: 200,
      pressureHandler: async (request, _reply, type) => {
        if (NEVER_SHED.has(request.routeOptions.url ?? '')) return;
        request.log.warn({ type }, 'shedding load');
        throw new ProblemError('service_unavailable', 'the service is overloaded; retry shortly', {
          'retry-after': '2',
        });
      },
    });
  },
  { name: 'security', dependencies: ['error-handler'] },
);
