import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Config } from '../config.js';
import { ProblemError } from '../errors.js';
import { type HistogramSeries, RequestHistogram } from '../telemetry/request-histogram.js';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Registry;
    /** The request-latency histogram's series for one route, method and status (for requests served outside Fastify's hooks). */
    httpRequestTimer(route: string, method: string, status: number): HistogramSeries;
  }
}

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * Prometheus metrics at GET /metrics: request rate and latency per route,
 * login and refresh outcomes, refresh-token reuse, the argon2 queue, signing
 * key age and time to the next rotation, the database pool. Protected by
 * METRICS_TOKEN (Bearer) when set, else answered to loopback clients only.
 */
export default fp(
  async function metrics(app: FastifyInstance, options: { config: Config }) {
    const { config } = options;
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, prefix: 'tessera_' });

    const requests = new RequestHistogram({
      name: 'tessera_http_request_duration_seconds',
      help: 'HTTP request latency by route, method and status',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });
    const logins = new Counter({
      name: 'tessera_logins_total',
      help: 'Password-grant outcomes: success, bad_credentials, throttled, overloaded, invalid_request',
      labelNames: ['outcome'],
      registers: [registry],
    });
    const refreshes = new Counter({
      name: 'tessera_refreshes_total',
      help: 'Refresh-grant outcomes: success, rejected, overloaded, invalid_request',
      labelNames: ['outcome'],
      registers: [registry],
    });
    const tokensIssued = new Counter({
      name: 'tessera_access_tokens_issued_total',
      help: 'Access tokens issued',
      registers: [registry],
    });
    const auditEvents = new Counter({
      name: 'tessera_audit_events_total',
      help: 'Audit events by type (refresh_token_reuse counts detected reuse)',
      labelNames: ['type'],
      registers: [registry],
    });
    const hashDuration = new Histogram({
      name: 'tessera_password_hash_duration_seconds',
      help: 'argon2id hash and verify durations',
      labelNames: ['kind'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    });
    const { hasher } = app.services;
    new Gauge({
      name: 'tessera_password_hash_queue_depth',
      help: 'Password hashes waiting for a slot',
      registers: [registry],
      collect() {
        this.set(hasher.queue.depth);
      },
    });
    new Gauge({
      name: 'tessera_password_hash_in_flight',
      help: 'Password hashes running now',
      registers: [registry],
      collect() {
        this.set(hasher.queue.active);
      },
    });
    new Gauge({
      name: 'tessera_signing_key_age_seconds',
      help: 'Seconds since the current signing key started signing',
      registers: [registry],
      collect() {
        const { currentKeyAge } = app.keyStore.schedule();
        if (currentKeyAge !== null) this.set(currentKeyAge);
      },
    });
    new Gauge({
      name: 'tessera_signing_key_next_rotation_seconds',
      help: 'Seconds until the next scheduled key rotation (absent when rotation is off)',
      registers: [registry],
      collect() {
        const { nextRotationIn } = app.keyStore.schedule();
        if (nextRotationIn !== null) this.set(nextRotationIn);
      },
    });
    new Gauge({
      name: 'tessera_db_pool_connections',
      help: 'PostgreSQL pool connections by state (total, idle, waiting clients)',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        const stats = app.db.poolStats();
        if (!stats) return;
        this.set({ state: 'total' }, stats.total);
        this.set({ state: 'idle' }, stats.idle);
        this.set({ state: 'waiting' }, stats.waiting);
      },
    });

    hasher.onHashed = (seconds, kind) => hashDuration.observe({ kind }, seconds);
    app.audit.onRecord = (type) => auditEvents.inc({ type });

    // The series per (route, method, status), resolved once, so a request
    // neither builds nor looks up a label set.
    const requestTimers = new Map<string, Map<string, Map<number, HistogramSeries>>>();
    const requestTimer = (route: string, method: string, status: number): HistogramSeries => {
      let byMethod = requestTimers.get(route);
      if (!byMethod) {
        byMethod = new Map();
        requestTimers.set(route, byMethod);
      }
      let byStatus = byMethod.get(method);
      if (!byStatus) {
        byStatus = new Map();
        byMethod.set(method, byStatus);
      }
      let timer = byStatus.get(status);
      if (!timer) {
        timer = requests.series(method, route, String(status));
        byStatus.set(status, timer);
      }
      return timer;
    };

    app.addHook('onResponse', (request, reply, done) => {
      const route = request.routeOptions.url ?? 'unmatched';
      if (route === '/metrics') return done();
      requestTimer(route, request.method, reply.statusCode).observe(reply.elapsedTime / 1000);
      if (route === '/oauth/token' && request.method === 'POST') countTokenRequest(request, reply.statusCode);
      done();
    });

    const countTokenRequest = (request: FastifyRequest, status: number) => {
      const grant = (request.body as { grant_type?: unknown } | undefined)?.grant_type;
      if (status === 200) tokensIssued.inc();
      const outcome =
        status === 200
          ? 'success'
          : status === 429
            ? 'throttled'
            : status === 503
              ? 'overloaded'
              : grant === 'password' && status === 400
                ? 'bad_credentials'
                : grant === 'refresh_token' && status === 400
                  ? 'rejected'
                  : 'invalid_request';
      if (grant === 'password') logins.inc({ outcome });
      else if (grant === 'refresh_token') refreshes.inc({ outcome });
    };

    const expected = config.metricsToken ? digest(`Bearer ${config.metricsToken}`) : null;
    const allowed = (request: FastifyRequest) =>
      expected
        ? timingSafeEqual(digest(request.headers.authorization ?? ''), expected)
        : LOOPBACK.has(request.socket.remoteAddress ?? '');

    app.get('/metrics', { schema: { hide: true } }, async (request, reply) => {
      if (!allowed(request)) {
        throw new ProblemError('unauthorized', 'metrics need METRICS_TOKEN, or a request from this machine', {
          'www-authenticate': 'Bearer realm="tessera-metrics"',
        });
      }
      reply.type(registry.contentType);
      return registry.metrics();
    });
    app.decorate('metrics', registry);
    app.decorate('httpRequestTimer', requestTimer);
  },
  { name: 'metrics', dependencies: ['services', 'key-store', 'database', 'audit'] },
);
