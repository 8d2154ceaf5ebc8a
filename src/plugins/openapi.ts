import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { version } from '../paths.js';

/**
 * The OpenAPI document, built from the route schemas (GET /docs/json), and its
 * UI at /docs. Registered before the routes so it sees all of them.
 */
export default fp(
  async function openapi(app: FastifyInstance, options: { config: Config }) {
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'tessera',
          version,
          description: 'Central authentication: password logins, RS256 access tokens, rotating refresh tokens, JWKS.',
        },
        servers: [{ url: options.config.issuer }],
        components: {
          securitySchemes: {
            bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
            // Services listed in SERVICE_CREDENTIALS (introspection, revocation feed).
            serviceAuth: { type: 'http', scheme: 'basic' },
          },
        },
      },
      refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
    });
    // The UI is registered after the routes (see app.ts) so its own routes stay out of the document.
  },
  { name: 'openapi' },
);

/** Serves the OpenAPI UI at /docs. */
export const openapiUi = fp(
  async function openapiUi(app: FastifyInstance) {
    await app.register(swaggerUi, { routePrefix: '/docs' });
  },
  { name: 'openapi-ui', dependencies: ['openapi'] },
);
