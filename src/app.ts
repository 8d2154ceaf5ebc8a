import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, LogController } from 'fastify';
import { type Bindings, type ChildLoggerOptions, type DestinationStream, pino } from 'pino';
import type { Config } from './config.js';
import { PROBLEMS } from './errors.js';
import audit from './plugins/audit.js';
import authenticate from './plugins/authenticate.js';
import database from './plugins/database.js';
import errorHandler from './plugins/error-handler.js';
import jwksFastPath, { type PreRouter } from './plugins/jwks-fast-path.js';
import keyStore from './plugins/key-store.js';
import metrics from './plugins/metrics.js';
import openapi, { openapiUi } from './plugins/openapi.js';
import pruner from './plugins/pruner.js';
import rateLimits from './plugins/rate-limit.js';
import redis from './plugins/redis.js';
import security, { apiHeaders } from './plugins/security.js';
import serviceAuth from './plugins/service-auth.js';
import services from './plugins/services.js';
import { requestIdFor } from './request-id.js';
import healthRoutes from './routes/health.js';
import introspectionRoutes from './routes/introspection.js';
import meRoutes from './routes/me.js';
import oauthRoutes from './routes/oauth.js';
import revocationRoutes from './routes/revocations.js';
import sessionRoutes from './routes/sessions.js';
import userRoutes from './routes/users.js';
import wellKnownRoutes from './routes/well-known.js';
import { OAuthErrorBody, Problem } from './schemas.js';

/** Test and embedding hooks; production uses the defaults. */
export interface AppOptions {
  /** The clock, in milliseconds since the epoch. Tests pass a controlled one. */
  now?: () => number;
  /** Where the JSON log goes (default: stdout). */
  logStream?: DestinationStream;
}

/** Log paths that may hold secrets; pino replaces them before anything is written. */
export const REDACTED_LOG_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  '*.password',
  '*.currentPassword',
  '*.newPassword',
  '*.token',
  '*.access_token',
  '*.refresh_token',
  '*.privateKey',
  '*.secret',
  '*.client_secret',
  '*.keyEncryptionSecret',
];

/** Query parameters whose values are never logged (a client that puts a token or password in a URL). */
const SECRET_QUERY_PARAMETER = /token|pass|pwd|secret|assertion|code|credential|key|auth|jwt|bearer/i;

/** Values that look like a token whatever they are called: a JWT, or a long opaque base64url string. */
const TOKEN_LIKE_VALUE = /^(eyJ[\w-]*\.[\w-]*\.[\w-]*|[\w-]{40,})$/;

/**
 * The request URL as logged: the values of secret-looking query parameters
 * replaced. RFC 6750 §2.3 and RFC 6749 §3.2 keep tokens and credentials out
 * of URLs, but a client that ignores them must not land its secret in the log.
 */
export function loggableUrl(url: string): string {
  const query = url.indexOf('?');
  if (query === -1) return url;
  const pairs = url.slice(query + 1).split('&');
  for (let i = 0; i < pairs.length; i += 1) {
    const pair = pairs[i] ?? '';
    const equals = pair.indexOf('=');
    if (equals === -1) continue;
    const rawName = pair.slice(0, equals);
    const value = decodeQueryPart(pair.slice(equals + 1));
    if (
      SECRET_QUERY_PARAMETER.test(decodeQueryPart(rawName)) ||
      TOKEN_LIKE_VALUE.test(value.replace(/^Bearer\s+/i, ''))
    ) {
      pairs[i] = `${rawName}=[redacted]`;
    }
  }
  return `${url.slice(0, query)}?${pairs.join('&')}`;
}

/** A query-string name or value as form-decoded text; a malformed escape is matched as it came. */
function decodeQueryPart(part: string): string {
  try {
    return decodeURIComponent(part.replace(/\+/g, ' '));
  } catch {
    return part;
  }
}

/** Fastify's request serializer, with {@link loggableUrl}. */
function serializeRequest(request: {
  method: string;
  url: string;
  host?: string;
  ip?: string;
  socket?: { remotePort?: number };
}) {
  return {
    method: request.method,
    url: loggableUrl(request.url),
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
  };
}

type LevelName = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/**
 * Each request's logger (bound to its request id), built only when the
 * request logs something at an enabled level. pino serializes a child's
 * bindings when it is created, through the redaction stringifier (the
 * wildcard paths make that the slow path), and most requests (a JWKS fetch,
 * with per-request access lines off) never log at all. A class, so a request
 * costs one small object, not a closure per level.
 */
class LazyChildLogger {
  #child: FastifyBaseLogger | null = null;
  readonly #threshold: number;

  constructor(
    private readonly parent: FastifyBaseLogger,
    private readonly bindings: Bindings,
    private readonly options: ChildLoggerOptions,
  ) {
    this.#threshold = LazyChildLogger.#value(parent, options.level ?? parent.level);
  }

  static #value(logger: FastifyBaseLogger, level: string): number {
    return (logger as unknown as { levels: { values: Record<string, number> } }).levels.values[level] ?? 0;
  }

  #real(): FastifyBaseLogger {
    this.#child ??= this.parent.child(this.bindings, this.options);
    return this.#child;
  }

  #log(level: LevelName, args: unknown[]): void {
    // Once the child exists (or the level was changed through it), it decides.
    if (!this.#child && LazyChildLogger.#value(this.parent, level) < this.#threshold) return;
    (this.#real()[level] as (...a: unknown[]) => void)(...args);
  }

  get level(): string {
    return this.#child ? this.#child.level : (this.options.level ?? this.parent.level);
  }
  set level(level: string) {
    this.#real().level = level;
  }
  fatal(...args: unknown[]) {
    this.#log('fatal', args);
  }
  error(...args: unknown[]) {
    this.#log('error', args);
  }
  warn(...args: unknown[]) {
    this.#log('warn', args);
  }
  info(...args: unknown[]) {
    this.#log('info', args);
  }
  debug(...args: unknown[]) {
    this.#log('debug', args);
  }
  trace(...args: unknown[]) {
    this.#log('trace', args);
  }
  silent() {}
  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#real().child(bindings, options);
  }
}

function lazyChildLogger(logger: FastifyBaseLogger, bindings: Bindings, options: ChildLoggerOptions) {
  return new LazyChildLogger(logger, bindings, options) as unknown as FastifyBaseLogger;
}

/**
 * Builds the tessera application: every Fastify option, plugin and route.
 * The server, the CLI and the tests all use this one function.
 */
export function buildApp(config: Config, options: AppOptions = {}): FastifyInstance {
  const now = options.now ?? Date.now;
  const securityHeaders = apiHeaders(config);
  const preRouter: PreRouter = { handle: null };
  const logger = pino(
    {
      level: config.logLevel,
      redact: { paths: REDACTED_LOG_PATHS, censor: '[redacted]' },
      serializers: { req: serializeRequest },
    },
    options.logStream,
  );

  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    trustProxy: config.trustProxy,
    // Credentials are small: nothing legitimate comes near 64 KiB.
    bodyLimit: 64 * 1024,
    // The HTTP server is made here so that the JWKS fast path sees requests
    // before Fastify's router (src/plugins/jwks-fast-path.ts). Fastify sets
    // its timeouts only on a server it creates itself, so they are set here.
    serverFactory: (handler) => {
      const server = createServer({ connectionsCheckingInterval: 1_000 }, (request, response) => {
        try {
          if (preRouter.handle?.(request, response)) return;
        } catch (error) {
          // Nothing in the fast path is known to throw; if it ever does, the route answers.
          logger.error({ err: error }, 'the JWKS fast path failed; answered by the route');
          if (response.headersSent) return void response.destroy();
        }
        handler(request, response);
      });
      // Node enforces headersTimeout and requestTimeout only when it checks its
      // connections (every 30 s by default): check every second, so a client that
      // never finishes its headers is cut off after 10 s, not up to 40.
      server.requestTimeout = 30_000;
      // Slow-loris: idle keep-alive sockets close, and a client has 10 s to send its headers.
      server.keepAliveTimeout = 5_000;
      server.headersTimeout = 10_000;
      server.setTimeout(60_000);
      server.maxHeadersCount = 100;
      return server;
    },
    // Accept a caller's request id (for tracing across services) when it is well-formed.
    requestIdHeader: false,
    genReqId: requestIdFor,
    logController: new LogController({ requestIdLogLabel: 'requestId' }),
    childLoggerFactory: lazyChildLogger,
    // No coercion, and a body with a field its schema does not allow is a 400,
    // not silently trimmed (Fastify's default removes such fields).
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
    // Requests that arrive while closing get the documented 503 (see src/plugins/security.ts).
    return503OnClosing: false,
    // Start-up may wait up to 60 s for another instance's migration lock, then migrate.
    pluginTimeout: 120_000,
    // Errors Node's HTTP parser raises before there is a request (headers too
    // large, a malformed request line, headers that never finish): the
    // documented problem details, with the security headers, written raw.
    clientErrorHandler: (error, socket) => {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
      const problem: keyof typeof PROBLEMS =
        code === 'HPE_HEADER_OVERFLOW'
          ? 'headers_too_large'
          : code === 'ERR_HTTP_REQUEST_TIMEOUT'
            ? 'request_timeout'
            : 'bad_request';
      const { status, title } = PROBLEMS[problem];
      const requestId = randomUUID();
      const body = JSON.stringify({
        type: `urn:tessera:problem:${problem}`,
        title,
        status,
        detail:
          problem === 'headers_too_large'
            ? 'the request headers exceed 16 KiB'
            : problem === 'request_timeout'
              ? 'the request headers did not arrive in time'
              : 'the request is not valid HTTP',
        code: problem,
        requestId,
      });
      const headers = [
        ...securityHeaders,
        ['content-type', 'application/problem+json; charset=utf-8'],
        ['content-length', String(Buffer.byteLength(body))],
        ['x-request-id', requestId],
        ['connection', 'close'],
      ];
      // Closed from this side once written (the server is half-open: a client
      // that never sends its FIN would otherwise keep the socket), and at the
      // latest after 2 s if the client does not read.
      socket.end(
        `HTTP/1.1 ${status} ${title}\r\n${headers.map(([name, value]) => `${name}: ${value}`).join('\r\n')}\r\n\r\n${body}`,
        () => socket.destroy(),
      );
      setTimeout(() => socket.destroy(), 2_000).unref();
      logger.info({ code, status, requestId }, 'refused a malformed or incomplete request');
    },
    // Errors Fastify raises before routing (a malformed percent-encoding in the
    // path) bypass the error handler: answer them in the documented shape too.
    frameworkErrors: (error, request, reply) => {
      // Before any hook has run: the security headers too.
      for (const [name, value] of securityHeaders) reply.header(name, value);
      (reply as FastifyReply)
        .code(400)
        .type('application/problem+json')
        .header('x-request-id', request.id)
        .send({
          type: 'urn:tessera:problem:bad_request',
          title: PROBLEMS.bad_request.title,
          status: 400,
          detail: error.code === 'FST_ERR_BAD_URL' ? 'the request path is not valid percent-encoding' : error.message,
          code: 'bad_request',
          requestId: String(request.id),
        });
    },
  });

  // Callback-style hooks: every request runs them, and an async hook costs a promise each.
  app.addHook('onRequest', (request, reply, done) => {
    // On every response, errors and 404s included: set on the raw response,
    // which costs no onSend stage per request.
    reply.raw.setHeader('x-request-id', request.id);
    done();
  });

  app.addSchema(Problem);
  app.addSchema(OAuthErrorBody);

  app.register(errorHandler);
  app.register(redis, { config });
  app.register(rateLimits, { config });
  app.register(openapi, { config });
  app.register(database, { config });
  app.register(audit, { now });
  app.register(keyStore, { config, now });
  app.register(services, { config, now });
  app.register(pruner, { config, now });
  app.register(metrics, { config });
  app.register(authenticate, { config });
  app.register(serviceAuth, { config });
  // After start-up work (migrations compile a large wasm module), so the
  // event-loop delay it caused is not mistaken for overload.
  app.register(security, { config });

  app.register(jwksFastPath, { config, preRouter });

  app.register(healthRoutes);
  app.register(wellKnownRoutes, { config });
  app.register(oauthRoutes, { config });
  app.register(userRoutes, { config });
  app.register(meRoutes);
  app.register(sessionRoutes);
  app.register(revocationRoutes);
  app.register(introspectionRoutes);
  app.register(openapiUi);

  return app;
}
