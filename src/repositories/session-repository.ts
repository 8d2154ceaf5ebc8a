import type { PrismaClient } from '../db/database.js';

/** A stored session (refresh-token family). */
export interface SessionRecord {
  id: string;
  userId: string;
  /** The sealed per-session refresh secret. */
  secret: string;
  generation: number;
  createdAt: Date;
  lastRotatedAt: Date;
  refreshExpiresAt: Date;
  expiresAt: Date;
  revokedAt: Date | null;
  revokedReason: string | null;
  userAgent: string | null;
  ipAddress: string | null;
}

/** Why a session ended; stored with it for the audit trail. */
export type RevocationReason =
  | 'logout'
  | 'logout_all'
  | 'revoked_by_user'
  | 'refresh_token_reuse'
  | 'password_changed'
  | 'user_disabled';

/** Sessions table access. */
export class SessionRepository {
  constructor(private readonly prisma: PrismaClient) {}

  async create(session: Omit<SessionRecord, 'revokedAt' | 'revokedReason'>): Promise<void> {
    await this.prisma.session.create({ data: session });
  }

  async findById(id: string): Promise<SessionRecord | null> {
    return this.prisma.session.findUnique({ where: { id } });
  }

  /**
   * Advances the session from `fromGeneration` to the next generation, as one
   * conditional UPDATE. Of any number of concurrent callers (on any instance)
   * exactly one sees `true`: the row lock taken by the UPDATE serializes them,
   * and the losers no longer match `generation = fromGeneration`.
   */
  async rotate(id: string, fromGeneration: number, now: Date, refreshExpiresAt: Date): Promise<boolean> {
    const { count } = await this.prisma.session.updateMany({
      where: { id, generation: fromGeneration, revokedAt: null },
      data: { generation: fromGeneration + 1, lastRotatedAt: now, refreshExpiresAt },
    });
    return count === 1;
  }

  /** Revokes one session; returns false when it was not active. */
  async revoke(id: string, reason: RevocationReason, now: Date, userId?: string): Promise<boolean> {
    const { count } = await this.prisma.session.updateMany({
      where: { id, revokedAt: null, ...(userId ? { userId } : {}) },
      data: { revokedAt: now, revokedReason: reason },
    });
    return count === 1;
  }

  /** Revokes every active session of a user; returns how many ended. */
  async revokeAllForUser(userId: string, reason: RevocationReason, now: Date): Promise<number> {
    const { count } = await this.prisma.session.updateMany({
      where: { userId, revokedAt: null },
      data: { revokedAt: now, revokedReason: reason },
    });
    return count;
  }

  /** Sessions of a user that are neither revoked nor expired, newest first. */
  async listActiveForUser(userId: string, now: Date): Promise<SessionRecord[]> {
    return this.prisma.session.findMany({
      where: { userId, revokedAt: null, expiresAt: { gt: now }, refreshExpiresAt: { gt: now } },
      orderBy: { createdAt: 'desc' },
    });
  }
}
