import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../config.js';
import { ProblemError } from '../errors.js';

/** The challenge sent with every 401 of a service-authenticated endpoint (RFC 7617 §2). */
export const SERVICE_CHALLENGE = 'Basic realm="tessera"';

/** A user-id / password pair from an `Authorization: Basic` header. */
export interface BasicCredentials {
  id: string;
  secret: string;
}

/** The outcome of OAuth client authentication on /oauth/introspect. */
export type ClientAuthentication =
  | { ok: true; serviceId: string }
  | { ok: false; error: 'invalid_client' | 'invalid_request'; description: string };

/** Checks service credentials (SERVICE_CREDENTIALS) for the service-facing endpoints. */
export interface ServiceAuth {
  /**
   * Returns `id` when `secret` is that service's secret, else null. Takes the
   * same time whether the id is unknown, the secret is wrong or both match.
   */
  verify(id: string, secret: string): string | null;
  /**
   * OAuth client authentication (RFC 6749 §2.3.1): HTTP Basic, or
   * `client_id` + `client_secret` in the body, but not both (§2.3).
   */
  authenticateClient(
    request: FastifyRequest,
    body: { client_id?: string | undefined; client_secret?: string | undefined },
  ): ClientAuthentication;
}

declare module 'fastify' {
  interface FastifyInstance {
    serviceAuth: ServiceAuth;
    /**
     * onRequest hook: requires `Authorization: Basic` with a SERVICE_CREDENTIALS
     * pair and sets `request.serviceId`; anything else is a 401 problem with a
     * Basic challenge.
     */
    authenticateService: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  }
  interface FastifyRequest {
    /** The service that authenticated this request, if any. */
    serviceId: string | null;
  }
}

const BASIC = /^Basic[ ]+([A-Za-z0-9+/]+={0,2})[ ]*$/i;

/**
 * Parses an RFC 7617 `Basic` Authorization header. Returns undefined when there
 * is no Basic header at all, null when there is one but it is malformed.
 */
export function parseBasicAuthorization(header: string | undefined): BasicCredentials | null | undefined {
  if (header === undefined || !/^Basic(\s|$)/i.test(header)) return undefined;
  const match = BASIC.exec(header);
  if (!match?.[1]) return null;
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  // RFC 7617 §2: the user-id cannot contain a colon; the password may.
  const colon = decoded.indexOf(':');
  if (colon <= 0) return null;
  return { id: decoded.slice(0, colon), secret: decoded.slice(colon + 1) };
}

/** application/x-www-form-urlencoded decoding (RFC 6749 Appendix B); null when not valid. */
function formDecode(value: string): string | null {
  try {
    return decodeURIComponent(value.replaceAll('+', ' '));
  } catch {
    return null;
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

function unauthorized(detail: string): ProblemError {
  return new ProblemError('service_unauthorized', detail, { 'www-authenticate': SERVICE_CHALLENGE });
}

/**
 * Authentication of the services that call /v1/revocations and
 * /oauth/introspect, against SERVICE_CREDENTIALS. Secrets are compared as
 * SHA-256 digests with `timingSafeEqual`, so neither their length nor their
 * content leaks through timing, and an unknown id costs the same comparison.
 */
export default fp(
  async function serviceAuth(app: FastifyInstance, options: { config: Config }) {
    const digests = new Map([...options.config.serviceCredentials].map(([id, secret]) => [id, digest(secret)]));
    // Compared against when the id is unknown; matches nothing anyone can send.
    const decoy = digest(randomBytes(32).toString('base64url'));

    const verify = (id: string, secret: string): string | null => {
      const expected = digests.get(id);
      const equal = timingSafeEqual(digest(secret), expected ?? decoy);
      return equal && expected ? id : null;
    };

    const auth: ServiceAuth = {
      verify,
      authenticateClient(request, body) {
        const basic = parseBasicAuthorization(request.headers.authorization);
        if (basic !== undefined && body.client_secret !== undefined) {
          return {
            ok: false,
            error: 'invalid_request',
            description: 'use one client authentication method: HTTP Basic or client_secret, not both',
          };
        }
        if (basic) {
          if (body.client_id !== undefined && body.client_id !== basic.id && body.client_id !== formDecode(basic.id)) {
            return { ok: false, error: 'invalid_client', description: 'client_id does not match the credentials' };
          }
          // RFC 6749 §2.3.1 form-encodes both parts before Basic encoding; many
          // clients do not. Ids are unreserved characters either way; accept the
          // secret as sent or form-decoded.
          const id = formDecode(basic.id) ?? basic.id;
          const decoded = formDecode(basic.secret);
          const serviceId =
            verify(id, basic.secret) ?? (decoded !== null && decoded !== basic.secret ? verify(id, decoded) : null);
          return serviceId
            ? { ok: true, serviceId }
            : { ok: false, error: 'invalid_client', description: 'client authentication failed' };
        }
        if (basic === null) return { ok: false, error: 'invalid_client', description: 'client authentication failed' };
        if (body.client_id !== undefined && body.client_secret !== undefined) {
          const serviceId = verify(body.client_id, body.client_secret);
          return serviceId
            ? { ok: true, serviceId }
            : { ok: false, error: 'invalid_client', description: 'client authentication failed' };
        }
        return { ok: false, error: 'invalid_client', description: 'client authentication is required' };
      },
    };

    app.decorate('serviceAuth', auth);
    app.decorateRequest('serviceId', null);
    app.decorate('authenticateService', async (request: FastifyRequest) => {
      const credentials = parseBasicAuthorization(request.headers.authorization);
      if (credentials === undefined) throw unauthorized('service credentials are required (HTTP Basic)');
      const serviceId = credentials && verify(credentials.id, credentials.secret);
      if (!serviceId) {
        request.log.warn('service authentication failed');
        throw unauthorized('the service credentials are invalid');
      }
      request.serviceId = serviceId;
    });
  },
  { name: 'service-auth' },
);
