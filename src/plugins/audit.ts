import type { FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { AuditRepository } from '../repositories/audit-repository.js';
import { type AuditContext, AuditLog } from '../services/audit-log.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The audit trail (log lines and the audit_events table). */
    audit: AuditLog;
  }
}

/** Where a request came from, for the audit trail. */
export function auditContext(request: FastifyRequest): AuditContext {
  return {
    ipAddress: request.ip,
    userAgent: request.headers['user-agent'] ?? null,
    requestId: String(request.id),
  };
}

/** Provides the audit trail to the services, the key store and the routes. */
export default fp(
  async function audit(app: FastifyInstance, options: { now: () => number }) {
    app.decorate('audit', new AuditLog(new AuditRepository(app.db.prisma, app.db.sql), app.log, options.now));
  },
  { name: 'audit', dependencies: ['database'] },
);
