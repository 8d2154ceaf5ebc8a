import type { IncomingMessage, ServerResponse } from 'node:http';
import cors from '@fastify/cors';
import underPressure from '@fastify/under-pressure';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import helmet, { type HelmetOptions } from 'helmet';
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
 * The headers helmet sets (and removes) for `options`. They depend on the
 * options only, so they are worked out once here; @fastify/helmet rebuilt the
 * helmet middleware from its options on every request.
 */
export function helmetHeaders(options: HelmetOptions): { set: [string, string][]; remove: string[] } {
  const set: [string, string][] = [];
  const remove: string[] = [];
  const response = {
    setHeader: (name: string, value: string) => set.push([name.toLowerCase(), value]),
    removeHeader: (name: string) => remove.push(name.toLowerCase()),
  };
  helmet(options)({} as IncomingMessage, response as unknown as ServerResponse, (error?: unknown) => {
    if (error) throw error;
  });
  return { set, remove };
}

/**
 * Browser-facing and overload protections: security headers (helmet's), CORS
 * for the configured origins only, and load shedding (under-pressure) on
 * event-loop delay and heap size, answered with 503 + Retry-After.
 */
export default fp(
  async function security(app: FastifyInstance, options: { config: Config }) {
    const { config } = options;
    const headers = helmetHeaders({
      // An API: no HTML except /docs, which needs its own inline assets.
      contentSecurityPolicy: false,
      crossOriginResourcePolicy: { policy: 'cross-origin' },
      hsts: config.issuer.startsWith('https://') ? { maxAge: 31_536_000, includeSubDomains: true } : false,
    });
    // On every response, errors and 404s included: set on the raw response as helmet does.
    app.addHook('onRequest', (_request, reply, done) => {
      const raw = reply.raw;
      for (const [name, value] of headers.set) raw.setHeader(name, value);
      for (const name of headers.remove) raw.removeHeader(name);
      done();
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
