import type { PrismaClient } from '../db/database.js';
import type { AuditRepository } from '../repositories/audit-repository.js';
import { deleteEndedSessions, deleteIdleExpiredSessions } from '../repositories/session-repository.js';

const BATCH = 1000;
/** Sessions examined per statement of the idle-expiry scan (a primary-key range). */
const SCAN_CHUNK = 2000;

/** How long ended rows are kept, in seconds. */
export interface RetentionPolicy {
  /** Ended sessions: at least as long as the revocation feed lists them (ACCESS_TOKEN_TTL + CLOCK_LEEWAY). */
  endedSessions: number;
  /** Audit events. */
  auditEvents: number;
}

/**
 * Deletes sessions that ended long enough ago and old audit events, in
 * batches, so the tables stay bounded however long tessera runs. Safe to run
 * on several instances at once: deletes are idempotent.
 */
export class Pruner {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly audit: AuditRepository,
    private readonly retention: RetentionPolicy,
    private readonly now: () => number,
  ) {}

  /** One full pass; returns what was deleted. */
  async prune(): Promise<{ sessions: number; auditEvents: number }> {
    const now = this.now();
    const endedBefore = new Date(now - this.retention.endedSessions * 1000);
    let sessions = 0;
    for (;;) {
      const count = await deleteEndedSessions(this.prisma, endedBefore, BATCH);
      sessions += count;
      if (count < BATCH) break;
    }
    let cursor: string | null = null;
    do {
      const chunk = await deleteIdleExpiredSessions(this.prisma, endedBefore, cursor, SCAN_CHUNK);
      sessions += chunk.deleted;
      cursor = chunk.next;
    } while (cursor !== null);
    const auditEvents = await this.audit.deleteBefore(new Date(now - this.retention.auditEvents * 1000));
    return { sessions, auditEvents };
  }
}
