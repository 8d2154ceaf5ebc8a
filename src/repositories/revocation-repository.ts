import type { PrismaClient } from '../db/database.js';

/** A session that ended, as the revocation feed needs it. */
export interface RevokedSession {
  id: string;
  revokedAt: Date;
}

/** A user whose access tokens issued before `tokensRevokedAt` are revoked. */
export interface RevokedUser {
  id: string;
  tokensRevokedAt: Date;
}

/**
 * Read side of revocations: the sessions and per-user revocation times
 * recorded after an instant. Both columns are indexed (`sessions.revoked_at`,
 * `users.tokens_revoked_at`), so a poll reads only the recent rows however
 * large the tables grow.
 */
export class RevocationRepository {
  constructor(private readonly prisma: PrismaClient) {}

  /** Sessions revoked strictly after `after`, oldest first. */
  async sessionsRevokedAfter(after: Date): Promise<RevokedSession[]> {
    const rows = await this.prisma.session.findMany({
      where: { revokedAt: { gt: after } },
      select: { id: true, revokedAt: true },
      orderBy: [{ revokedAt: 'asc' }, { id: 'asc' }],
    });
    return rows.flatMap((row) => (row.revokedAt ? [{ id: row.id, revokedAt: row.revokedAt }] : []));
  }

  /** Users whose tokens were revoked strictly after `after`, oldest first. */
  async usersRevokedAfter(after: Date): Promise<RevokedUser[]> {
    const rows = await this.prisma.user.findMany({
      where: { tokensRevokedAt: { gt: after } },
      select: { id: true, tokensRevokedAt: true },
      orderBy: [{ tokensRevokedAt: 'asc' }, { id: 'asc' }],
    });
    return rows.flatMap((row) => (row.tokensRevokedAt ? [{ id: row.id, tokensRevokedAt: row.tokensRevokedAt }] : []));
  }
}
