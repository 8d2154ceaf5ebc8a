import type { PrismaClient } from '../db/database.js';

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
  constructor(private readonly prisma: PrismaClient) {}

  async insert(event: AuditRecord): Promise<void> {
    await this.prisma.auditEvent.create({ data: event });
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
