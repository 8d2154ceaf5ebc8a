import type { PrismaClient } from '../db/database.js';
import type { SqlDriver } from '../db/sql-driver.js';
import { inDatabaseSpan } from '../telemetry/tracing.js';

/** A stored audit event. */
export interface AuditRecord {
  id: string;
  type: string;
  userId: string | null;
  sessionId: string | null;
  ipAddress: string | null;
  userAgent: string | null;
  requestId: string | null;
  details: string | null;
  createdAt: Date;
}

/** The audit_events table. */
export class AuditRepository {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly sql: SqlDriver,
  ) {}

  /** Straight through the driver (see src/db/sql-driver.ts): every login writes one. */
  async insert(event: AuditRecord): Promise<void> {
    await inDatabaseSpan(this.sql.system, 'AuditEvent', 'insert', () =>
      this.sql.execute(
        `INSERT INTO audit_events (id, type, user_id, session_id, ip_address, user_agent, request_id, details, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
        [
          event.id,
          event.type,
          event.userId,
          event.sessionId,
          event.ipAddress,
          event.userAgent,
          event.requestId,
          event.details,
          event.createdAt,
        ],
      ),
    );
  }

  /** A user's events, newest first, before `before` (for paging). */
  async listForUser(userId: string, limit: number, before?: Date): Promise<AuditRecord[]> {
    return this.prisma.auditEvent.findMany({
      where: { userId, ...(before ? { createdAt: { lt: before } } : {}) },
      orderBy: { createdAt: 'desc' },
      take: limit,
    });
  }

  /** Deletes events older than `before`; returns how many. */
  async deleteBefore(before: Date): Promise<number> {
    const { count } = await this.prisma.auditEvent.deleteMany({ where: { createdAt: { lt: before } } });
    return count;
  }
}
