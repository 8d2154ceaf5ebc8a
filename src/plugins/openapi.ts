import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { version } from '../paths.js';

type OpenApiResponse = { description?: string; content?: Record<string, { schema?: { $ref?: string } }> };
type OpenApiDocument = {
  paths?: Record<string, Record<string, { responses?: Record<string, OpenApiResponse> }>>;
};

const PROBLEM_REF = '#/components/schemas/Problem';
const OAUTH_ERROR_REF = '#/components/schemas/OAuthError';

/**
 * What the route schemas cannot say: problem details are sent as
 * `application/problem+json` (RFC 9457 §3), and any operation can answer 500
 * (in its routes' error shape) when something unexpected fails.
 */
function documentErrorShapes(document: OpenApiDocument): OpenApiDocument {
  for (const operations of Object.values(document.paths ?? {})) {
    for (const operation of Object.values(operations)) {
      const responses = operation.responses;
      if (!responses) continue;
      let oauth = false;
      for (const response of Object.values(responses)) {
        const json = response.content?.['application/json'];
        if (json?.schema?.$ref === PROBLEM_REF) response.content = { 'application/problem+json': json };
        if (json?.schema?.$ref === OAUTH_ERROR_REF) oauth = true;
      }
      responses['500'] ??= oauth
        ? {
            description: 'RFC 6749 §5.2 error response (server_error)',
            content: { 'application/json': { schema: { $ref: OAUTH_ERROR_REF } } },
          }
        : {
            description: 'RFC 9457 problem details (internal_error)',
            content: { 'application/problem+json': { schema: { $ref: PROBLEM_REF } } },
          };
    }
  }
  return document;
}

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
      transformObject: (document) =>
        'openapiObject' in document
          ? documentErrorShapes(document.openapiObject as OpenApiDocument)
          : document.swaggerObject,
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
