import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import {
  DatabaseUnavailableError,
  OAUTH_ERRORS,
  OAuthError,
  type OAuthErrorCode,
  PROBLEMS,
  type ProblemCode,
  ProblemError,
} from '../errors.js';
import { AbandonedError, OverloadedError } from '../services/bounded-queue.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Errors on this route use the RFC 6749 §5.2 shape instead of problem details. */
    oauth?: boolean;
  }
}

/** Fastify's own client-error codes, mapped onto our closed list. */
const FASTIFY_CODES: Record<string, ProblemCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'body_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'malformed_body',
  FST_ERR_CTP_INVALID_JSON_BODY: 'malformed_body',
  FST_ERR_VALIDATION: 'validation_failed',
};

const BY_STATUS: Record<number, ProblemCode> = {
  400: 'bad_request',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'body_too_large',
  415: 'unsupported_media_type',
  431: 'headers_too_large',
};

/** Connection-level failures that mean "the database is down", not "the request is wrong". */
const UNAVAILABLE_CODES = new Set([
  'P1001',
  'P1002',
  'P1008',
  'P1017',
  'P2024',
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  '57P01',
  '57P03',
]);

/** Driver-adapter error kinds that mean the connection, not the query, failed. */
const UNAVAILABLE_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout']);

function isDatabaseUnavailable(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 5; depth++) {
    if (current instanceof DatabaseUnavailableError) return true;
    const { code, cause, meta } = current as { code?: unknown; cause?: unknown; meta?: unknown };
    if (typeof code === 'string' && UNAVAILABLE_CODES.has(code)) return true;
    // better-sqlite3 reports extended codes: SQLITE_BUSY_SNAPSHOT, SQLITE_BUSY_TIMEOUT, …
    if (typeof code === 'string' && code.startsWith('SQLITE_BUSY')) return true;
    // A failed raw query is P2010 whatever the reason; the adapter's error says which.
    const kind = (meta as { driverAdapterError?: { cause?: { kind?: unknown } } } | undefined)?.driverAdapterError
      ?.cause?.kind;
    if (typeof kind === 'string' && UNAVAILABLE_KINDS.has(kind)) return true;
    const message = (current as { message?: unknown }).message;
    if (
      typeof message === 'string' &&
      /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|Connection terminated|connection timeout|Query read timeout|timeout exceeded when trying to connect|Can't reach database|DatabaseNotReachable|ConnectionClosed|SocketTimeout/i.test(
        message,
      )
    ) {
      return true;
    }
    current = cause;
  }
  return false;
}

function sendProblem(
  request: FastifyRequest,
  reply: FastifyReply,
  code: ProblemCode,
  detail?: string,
  errors?: { field: string; message: string }[],
): FastifyReply {
  const { status, title } = PROBLEMS[code];
  return reply
    .code(status)
    .type('application/problem+json')
    .send({
      type: `urn:tessera:problem:${code}`,
      title,
      status,
      ...(detail ? { detail } : {}),
      code,
      instance: request.url.split('?')[0],
      requestId: String(request.id),
      ...(errors ? { errors } : {}),
    });
}

function sendOAuth(
  reply: FastifyReply,
  error: OAuthErrorCode,
  description: string,
  status: number = OAUTH_ERRORS[error],
) {
  // RFC 6749 §5.1: token responses, errors included, must not be cached.
  return reply.code(status).header('cache-control', 'no-store').send({ error, error_description: description });
}

function validationErrors(error: FastifyError): { field: string; message: string }[] {
  return (error.validation ?? []).map((issue) => {
    const params = issue.params as { missingProperty?: string; additionalProperty?: string } | undefined;
    const missing = params?.missingProperty;
    const extra = params?.additionalProperty;
    const path = issue.instancePath.replace(/^\//, '').replaceAll('/', '.');
    const named = missing ?? extra;
    const field = named ? [path, named].filter(Boolean).join('.') : path || (error.validationContext ?? 'body');
    return { field, message: missing ? 'is required' : extra ? 'is not allowed' : (issue.message ?? 'is invalid') };
  });
}

/**
 * One error handler for the whole app. Expected errors carry a code from the
 * closed list in src/errors.ts; Fastify's own 4xx errors are mapped onto it;
 * anything else is a generic 500 that names only the request id, with the
 * detail going to the log.
 */
export default fp(
  async function errorHandler(app: FastifyInstance) {
    app.setErrorHandler((error: FastifyError, request, reply) => {
      const oauth = request.routeOptions.config?.oauth === true;

      if (error instanceof OAuthError) return sendOAuth(reply, error.error, error.description, error.status);
      if (error instanceof ProblemError) {
        reply.headers(error.headers);
        if (oauth) {
          // RFC 6749 has no code for throttling or overload: temporarily_unavailable
          // with the HTTP status (429/503) and Retry-After says it.
          const code = error.status === 429 || error.status >= 500 ? 'temporarily_unavailable' : 'invalid_request';
          return sendOAuth(reply, code, error.detail ?? PROBLEMS[error.code].title, error.status);
        }
        return sendProblem(request, reply, error.code, error.detail);
      }
      if (error instanceof AbandonedError) {
        // The client has gone, so nobody reads this; answer as to any request
        // that was not served (and do not log it as an error).
        const detail = 'the request was dropped';
        if (oauth) return sendOAuth(reply, 'temporarily_unavailable', detail);
        return sendProblem(request, reply, 'service_unavailable', detail);
      }
      if (error instanceof OverloadedError) {
        reply.header('retry-after', String(error.retryAfter));
        const detail = 'the service is saturated; retry shortly';
        if (oauth) return sendOAuth(reply, 'temporarily_unavailable', detail);
        return sendProblem(request, reply, 'service_unavailable', detail);
      }
      if (error.validation) {
        const errors = validationErrors(error);
        const summary = errors.map((e) => `${e.field} ${e.message}`).join('; ');
        if (oauth) return sendOAuth(reply, 'invalid_request', summary);
        return sendProblem(request, reply, 'validation_failed', summary, errors);
      }
      const mapped =
        (error.code && FASTIFY_CODES[error.code]) ??
        (error.statusCode && error.statusCode >= 400 && error.statusCode < 500
          ? (BY_STATUS[error.statusCode] ?? 'bad_request')
          : undefined);
      if (mapped) {
        // Fastify's messages for these are safe and useful ("Body is too large", "Unsupported Media Type: text/plain").
        if (oauth) return sendOAuth(reply, 'invalid_request', error.message, PROBLEMS[mapped].status);
        return sendProblem(request, reply, mapped, error.message);
      }
      if (isDatabaseUnavailable(error)) {
        request.log.error({ err: error }, 'database unavailable');
        reply.header('retry-after', '5');
        if (oauth) return sendOAuth(reply, 'temporarily_unavailable', 'the service is temporarily unavailable');
        return sendProblem(request, reply, 'service_unavailable');
      }
      request.log.error({ err: error }, 'unhandled error');
      if (oauth) return sendOAuth(reply, 'server_error', `internal error (request id ${request.id})`);
      return sendProblem(request, reply, 'internal_error', `internal error (request id ${request.id})`);
    });

    app.setNotFoundHandler((request, reply) => {
      sendProblem(request, reply, 'not_found', `no route for ${request.method} ${request.url.split('?')[0]}`);
    });
  },
  { name: 'error-handler' },
);
