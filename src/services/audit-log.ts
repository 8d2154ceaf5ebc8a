import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import type { AuditRecord, AuditRepository } from '../repositories/audit-repository.js';

/** The closed list of audit event types. */
export type AuditEventType =
  | 'user_registered'
  | 'login_succeeded'
  | 'login_failed'
  | 'login_throttled'
  | 'refresh_token_reuse'
  | 'password_changed'
  | 'session_revoked'
  | 'sessions_revoked'
  | 'user_disabled'
  | 'signing_key_created'
  | 'signing_key_promoted'
  | 'signing_key_revoked';

/** Where a request came from; attached to events caused by requests. */
export interface AuditContext {
  ipAddress?: string | null;
  userAgent?: string | null;
  requestId?: string | null;
}

/** One event to record. `details` must never hold secrets (passwords, tokens, key material). */
export interface AuditEvent extends AuditContext {
  type: AuditEventType;
  userId?: string | null;
  sessionId?: string | null;
  details?: Record<string, string | number | boolean | null>;
}

/**
 * The audit trail: each event is one structured log line (`audit: true`) and
 * one row in audit_events, queryable by user. Recording never fails the
 * request it describes: a database error is logged, and the log line stands.
 */
export class AuditLog {
  /** Told about every event (metrics count them by type). */
  onRecord: ((type: AuditEventType) => void) | null = null;

  constructor(
    private readonly repository: AuditRepository,
    private readonly log: FastifyBaseLogger,
    private readonly now: () => number,
  ) {}

  async record(event: AuditEvent): Promise<void> {
    this.onRecord?.(event.type);
    const record: AuditRecord = {
      id: randomUUID(),
      type: event.type,
      userId: event.userId ?? null,
      sessionId: event.sessionId ?? null,
      ipAddress: event.ipAddress ?? null,
      userAgent: event.userAgent?.slice(0, 512) ?? null,
      requestId: event.requestId ?? null,
      details: event.details ? JSON.stringify(event.details) : null,
      createdAt: new Date(this.now()),
    };
    this.log.info(
      {
        audit: true,
        event: record.type,
        userId: record.userId,
        sessionId: record.sessionId,
        ip: record.ipAddress,
        ...(event.details ? { details: event.details } : {}),
      },
      `audit: ${record.type}`,
    );
    try {
      await this.repository.insert(record);
    } catch (error) {
      this.log.error({ err: error, event: record.type }, 'audit event could not be stored');
    }
  }

  /** A user's own history, newest first. */
  async listForUser(userId: string, limit = 50, before?: Date) {
    const rows = await this.repository.listForUser(userId, limit, before);
    return rows.map((row) => ({
      id: row.id,
      type: row.type,
      sessionId: row.sessionId,
      ipAddress: row.ipAddress,
      userAgent: row.userAgent,
      details: row.details ? (JSON.parse(row.details) as Record<string, unknown>) : {},
      createdAt: row.createdAt,
    }));
  }
}
