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

/** HSTS for a year, subdomains included, when the issuer is HTTPS; the same on API responses and /docs. */
function hstsPolicy(config: Pick<Config, 'issuer'>) {
  return config.issuer.startsWith('https://') ? { maxAge: 31_536_000, includeSubDomains: true } : false;
}

/**
 * The security headers of API responses (JSON and problem details), after the
 * OWASP REST Security Cheat Sheet: no MIME sniffing, never framed, no referrer,
 * readable cross-origin (the JWKS is fetched from anywhere; CORS still decides
 * which pages may read the rest), HSTS behind HTTPS. helmet's other headers
 * (COOP, Origin-Agent-Cluster, X-DNS-Prefetch-Control, X-Download-Options,
 * X-Permitted-Cross-Domain-Policies, X-XSS-Protection) only mean something for
 * HTML documents, so only /docs sends them. Every header is bytes that every
 * caller parses: the JWKS is polled by every verifier.
 */
export function apiHeaders(config: Pick<Config, 'issuer'>): [string, string][] {
  const hsts = hstsPolicy(config);
  return [
    ['x-content-type-options', 'nosniff'],
    ['x-frame-options', 'DENY'],
    ['referrer-policy', 'no-referrer'],
    ['cross-origin-resource-policy', 'cross-origin'],
    ...(hsts
      ? ([['strict-transport-security', `max-age=${hsts.maxAge}; includeSubDomains`]] as [string, string][])
      : []),
  ];
}

/** The API documentation's routes: an HTML page, so helmet's full set of headers. */
const isDocumentation = (url: string | undefined) => url?.startsWith('/docs') === true;

/**
 * Browser-facing and overload protections: security headers (an API set, and
 * helmet's on the HTML documentation), CORS for the configured origins only,
 * and load shedding (under-pressure) on event-loop delay and heap size,
 * answered with 503 + Retry-After.
 */
export default fp(
  async function security(app: FastifyInstance, options: { config: Config }) {
    const { config } = options;
    const api = apiHeaders(config);
    const documentation = helmetHeaders({
      // Swagger UI needs its own inline assets.
      contentSecurityPolicy: false,
      crossOriginResourcePolicy: { policy: 'cross-origin' },
      hsts: hstsPolicy(config),
    });
    // Graceful shutdown: in-flight requests finish; new ones get 503 in the documented
    // shape (problem details, or temporarily_unavailable on OAuth routes) with Retry-After.
    let closing = false;
    app.addHook('preClose', async () => {
      closing = true;
    });
    // On every response, errors, 404s and shutdown's 503s included: set on the
    // raw response as helmet does.
    app.addHook('onRequest', (request, reply, done) => {
      const raw = reply.raw;
      if (isDocumentation(request.routeOptions.url)) {
        for (const [name, value] of documentation.set) raw.setHeader(name, value);
        for (const name of documentation.remove) raw.removeHeader(name);
      } else {
        for (const [name, value] of api) raw.setHeader(name, value);
      }
      if (!closing) return done();
      reply.header('connection', 'close');
      done(new ProblemError('service_unavailable', 'the server is shutting down; retry', { 'retry-after': '1' }));
    });
    // With no origin allowed there is nothing for CORS to add: a preflight gets
    // the same 404 either way, and no request pays for the check.
    if (config.allowedOrigins.length > 0) {
      await app.register(cors, {
        origin: config.allowedOrigins,
        credentials: true,
        methods: ['GET', 'POST', 'DELETE'],
        allowedHeaders: ['authorization', 'content-type', 'x-request-id'],
        exposedHeaders: ['x-request-id', 'retry-after', 'www-authenticate'],
        maxAge: 600,
      });
    }
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
