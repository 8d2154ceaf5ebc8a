import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import type { JwksDocument } from '../keys/key-store.js';
import { requestIdFor } from '../request-id.js';
import { discoveryCacheControl, JWKS_CONTENT_TYPE, JWKS_PATH } from '../routes/well-known.js';
import { apiHeaders } from './security.js';

/**
 * A handler that runs on the HTTP server before Fastify: it answers a request
 * itself (and returns true) or leaves it to Fastify (false). `handle` is null
 * while nothing intercepts (before the app is ready, and from the start of
 * its shutdown on).
 */
export interface PreRouter {
  handle: ((request: IncomingMessage, response: ServerResponse) => boolean) | null;
}

/** Headers that make a GET of the JWKS something other than the plain fetch answered here. */
function isPlainFetch(request: IncomingMessage): boolean {
  const headers = request.headers;
  return (
    headers['if-none-match'] === undefined &&
    headers['content-length'] === undefined &&
    headers['transfer-encoding'] === undefined
  );
}

/**
 * Serves the plain `GET /.well-known/jwks.json` from a response prepared once
 * per key-set change, before Fastify routes the request. Every verifier polls
 * the JWKS, and on it Fastify's request and reply objects, routing and
 * per-request hooks cost more CPU than the response itself: served here, a
 * fetch costs less than a bare Fastify route sending the same bytes (see
 * README, Performance). The response is the one the Fastify route gives: the
 * same status, body and headers (security headers, Cache-Control, ETag,
 * X-Request-Id), and it is counted in the same request metrics (its duration
 * is the handler's, up to the response being handed to the socket). Anything
 * else (a conditional request, HEAD, a query string, a body, any request once
 * shutdown has begun) goes to the Fastify route, which stays the documented
 * one (OpenAPI) and the one `app.inject` reaches. With CORS on (ALLOWED_ORIGINS)
 * every JWKS request goes to the route: @fastify/cors adds headers (`Vary:
 * Origin` among them, which shared caches need) even to requests without an
 * Origin.
 */
export default fp(
  async function jwksFastPath(app: FastifyInstance, options: { config: Config; preRouter: PreRouter }) {
    const { config, preRouter } = options;
    const security = apiHeaders(config);
    const cacheControl = discoveryCacheControl(config);
    const timer = app.httpRequestTimer(JWKS_PATH, 'GET', 200);
    let document: JwksDocument | null = null;
    // Prepared once per key set: the body, and the headers after the request
    // id as a flat [name, value, ...] list for writeHead (one call, no
    // per-header setHeader bookkeeping). The body stays a string: Node joins a
    // string body to the header block and writes both at once, where a Buffer
    // body goes out as a second chunk of a writev (~3,000 more instructions a
    // response, counted with callgrind).
    let body = '';
    let headers: string[] = [];

    const handle = (request: IncomingMessage, response: ServerResponse): boolean => {
      if (request.url !== JWKS_PATH || request.method !== 'GET' || !isPlainFetch(request)) return false;
      const start = performance.now();
      const current = app.keyStore.jwks;
      if (current !== document) {
        document = current;
        body = current.body;
        headers = [
          // The order Fastify's route sends them in: the request id first (its slot is filled per request).
          'x-request-id',
          '',
          ...security.flat(),
          'cache-control',
          cacheControl,
          'etag',
          current.etag,
          'content-type',
          JWKS_CONTENT_TYPE,
          'content-length',
          String(Buffer.byteLength(body)),
        ];
      }
      headers[1] = requestIdFor(request);
      response.writeHead(200, headers);
      response.end(body);
      timer.observe((performance.now() - start) / 1000);
      return true;
    };

    app.addHook('onReady', async () => {
      if (config.allowedOrigins.length === 0) preRouter.handle = handle;
    });
    // From here on Fastify answers, with the documented 503 while closing.
    app.addHook('preClose', async () => {
      preRouter.handle = null;
    });
  },
  { name: 'jwks-fast-path', dependencies: ['key-store', 'metrics', 'security'] },
);
