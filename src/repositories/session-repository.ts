import type { PrismaClient } from '../db/database.js';
import type { SqlDriver } from '../db/sql-driver.js';
import { inDatabaseSpan } from '../telemetry/tracing.js';
import { rolesOf, type UserRecord } from './user-repository.js';

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

/** What a refresh decides on: the session's state, without its descriptive columns. */
export type SessionState = Pick<
  SessionRecord,
  'id' | 'userId' | 'secret' | 'generation' | 'lastRotatedAt' | 'refreshExpiresAt' | 'expiresAt' | 'revokedAt'
>;

/** What an access token says about its user, and whether the user may still have one. */
export type TokenSubject = Pick<UserRecord, 'id' | 'username' | 'roles' | 'disabledAt'>;

/** A row of {@link SessionRepository.findWithUser}'s query. */
type SessionWithUserRow = Omit<SessionState, 'generation'> & {
  generation: number | bigint;
  username: string;
  roles: string;
  userDisabledAt: Date | null;
};

/** Why a session ended; stored with it for the audit trail. */
export type RevocationReason =
  | 'logout'
  | 'logout_all'
  | 'revoked_by_user'
  | 'refresh_token_reuse'
  | 'password_changed'
  | 'user_disabled';

/** What decides whether an access token of a session is still good (see {@link SessionRepository.findAccessState}). */
export interface SessionAccessState {
  userId: string;
  expiresAt: Date;
  revokedAt: Date | null;
  /** Access tokens of the user issued before this instant are revoked. */
  userTokensRevokedAt: Date | null;
  userDisabledAt: Date | null;
}

/**
 * Sets `users.tokens_revoked_at` to `now`, never moving it backwards (an
 * instance whose clock lags must not shorten an earlier revocation). Meant to
 * run inside the caller's transaction.
 */
export function markTokensRevoked(prisma: PrismaClient, userId: string, now: Date) {
  return prisma.user.updateMany({
    where: { id: userId, OR: [{ tokensRevokedAt: null }, { tokensRevokedAt: { lt: now } }] },
    data: { tokensRevokedAt: now },
  });
}

/** Sessions table access. */
export class SessionRepository {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly sql: SqlDriver,
  ) {}

  /** Straight through the driver (see src/db/sql-driver.ts): every login opens one. */
  async create(session: Omit<SessionRecord, 'revokedAt' | 'revokedReason'>): Promise<void> {
    await inDatabaseSpan(this.sql.system, 'Session', 'create', () =>
      this.sql.execute(
        `INSERT INTO sessions (id, user_id, secret, generation, created_at, last_rotated_at, refresh_expires_at,
                               expires_at, user_agent, ip_address)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        [
          session.id,
          session.userId,
          session.secret,
          session.generation,
          session.createdAt,
          session.lastRotatedAt,
          session.refreshExpiresAt,
          session.expiresAt,
          session.userAgent,
          session.ipAddress,
        ],
      ),
    );
  }

  async findById(id: string): Promise<SessionRecord | null> {
    return this.prisma.session.findUnique({ where: { id } });
  }

  /**
   * The session's state and its user in one query (a refresh needs both), and
   * only the columns a refresh reads: every column is work for the driver on
   * every refresh, and the password hash has no business being read there.
   * Straight through the driver (see src/db/sql-driver.ts).
   */
  async findWithUser(id: string): Promise<(SessionState & { user: TokenSubject }) | null> {
    // Driver statements bypass the model-query spans of src/db/database.ts: name this one here.
    const rows = await inDatabaseSpan(this.sql.system, 'Session', 'findWithUser', () =>
      this.sql.query<SessionWithUserRow>(
        `SELECT s.id AS "id", s.user_id AS "userId", s.secret AS "secret", s.generation AS "generation",
                s.last_rotated_at AS "lastRotatedAt", s.refresh_expires_at AS "refreshExpiresAt",
                s.expires_at AS "expiresAt", s.revoked_at AS "revokedAt",
                u.username AS "username", u.roles AS "roles", u.disabled_at AS "userDisabledAt"
           FROM sessions s JOIN users u ON u.id = s.user_id
          WHERE s.id = $1`,
        [id],
      ),
    );
    const row = rows[0];
    if (!row) return null;
    return {
      id: row.id,
      userId: row.userId,
      secret: row.secret,
      // Integers may come back as bigint from some drivers.
      generation: Number(row.generation),
      lastRotatedAt: row.lastRotatedAt,
      refreshExpiresAt: row.refreshExpiresAt,
      expiresAt: row.expiresAt,
      revokedAt: row.revokedAt,
      user: {
        id: row.userId,
        username: row.username,
        roles: rolesOf(row.roles),
        disabledAt: row.userDisabledAt,
      },
    };
  }

  /**
   * Advances the session from `fromGeneration` to the next generation, as one
   * conditional UPDATE. Of any number of concurrent callers (on any instance)
   * exactly one sees `true`: the row lock taken by the UPDATE serializes them,
   * and the losers no longer match `generation = fromGeneration`.
   */
  async rotate(id: string, fromGeneration: number, now: Date, refreshExpiresAt: Date): Promise<boolean> {
    // Straight through the driver (the same SQL on both databases): it runs on every refresh.
    const count = await inDatabaseSpan(this.sql.system, 'Session', 'rotate', () =>
      this.sql.execute(
        `UPDATE sessions
            SET generation = $1, last_rotated_at = $2, refresh_expires_at = $3
          WHERE id = $4 AND generation = $5 AND revoked_at IS NULL`,
        [fromGeneration + 1, now, refreshExpiresAt, id, fromGeneration],
      ),
    );
    return count === 1;
  }

  /**
   * A whole refresh's database work in one statement, for a caller that has
   * already checked the presented token against the session's secret (kept
   * from an earlier read of the row as its `sealedSecret` text): advances the
   * session from `fromGeneration` as {@link rotate} does, but only while that
   * is still the row's secret, the session is unrevoked and neither idle- nor
   * absolutely expired at `now`, and its user is not disabled, and answers the
   * user an access token names. Null when any of that does not hold: the
   * caller then reads the row and decides (a replay, a race, a revoked or
   * expired session, a disabled user). One statement instead of a read and
   * an update is one round trip instead of two on PostgreSQL.
   */
  async rotateIfCurrent(
    id: string,
    fromGeneration: number,
    sealedSecret: string,
    now: Date,
    refreshExpiresAt: Date,
  ): Promise<TokenSubject | null> {
    const rows = await inDatabaseSpan(this.sql.system, 'Session', 'rotateIfCurrent', () =>
      // Dates compare as Prisma's own filters compare them: timestamptz on
      // PostgreSQL, its fixed-width ISO 8601 text on SQLite.
      this.sql.query<{ userId: string; username: string; roles: string }>(
        `UPDATE sessions
            SET generation = $1, last_rotated_at = $2, refresh_expires_at = $3
          WHERE id = $4 AND generation = $5 AND secret = $6 AND revoked_at IS NULL
            AND expires_at > $7 AND refresh_expires_at > $8
            AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = sessions.user_id AND u.disabled_at IS NOT NULL)
        RETURNING user_id AS "userId",
                  (SELECT u.username FROM users u WHERE u.id = sessions.user_id) AS "username",
                  (SELECT u.roles FROM users u WHERE u.id = sessions.user_id) AS "roles"`,
        [fromGeneration + 1, now, refreshExpiresAt, id, fromGeneration, sealedSecret, now, now],
      ),
    );
    const row = rows[0];
    if (!row) return null;
    return { id: row.userId, username: row.username, roles: rolesOf(row.roles), disabledAt: null };
  }

  /** Revokes one session; returns false when it was not active. */
  async revoke(id: string, reason: RevocationReason, now: Date, userId?: string): Promise<boolean> {
    const { count } = await this.prisma.session.updateMany({
      where: { id, revokedAt: null, ...(userId ? { userId } : {}) },
      data: { revokedAt: now, revokedReason: reason },
    });
    return count === 1;
  }

  /**
   * Revokes every active session of a user and marks every access token issued
   * to them before `now` as revoked (`users.tokens_revoked_at`), in one
   * transaction, so the two commit together; /v1/revocations publishes both
   * to services that verify tokens locally. Returns how many sessions ended.
   */
  async revokeAllForUser(userId: string, reason: RevocationReason, now: Date): Promise<number> {
    const [sessions] = await this.prisma.$transaction([
      this.prisma.session.updateMany({
        where: { userId, revokedAt: null },
        data: { revokedAt: now, revokedReason: reason },
      }),
      markTokensRevoked(this.prisma, userId, now),
    ]);
    return sessions.count;
  }

  /**
   * The state an access token of this session depends on: the session itself
   * and its user's per-user revocation time and disabled flag. One query, read
   * on every authenticated request.
   */
  async findAccessState(id: string): Promise<SessionAccessState | null> {
    const row = await this.prisma.session.findUnique({
      where: { id },
      select: {
        userId: true,
        expiresAt: true,
        revokedAt: true,
        user: { select: { tokensRevokedAt: true, disabledAt: true } },
      },
    });
    if (!row) return null;
    return {
      userId: row.userId,
      expiresAt: row.expiresAt,
      revokedAt: row.revokedAt,
      userTokensRevokedAt: row.user.tokensRevokedAt,
      userDisabledAt: row.user.disabledAt,
    };
  }

  /** Sessions of a user that are neither revoked nor expired, newest first. */
  async listActiveForUser(userId: string, now: Date): Promise<SessionRecord[]> {
    return this.prisma.session.findMany({
      where: { userId, revokedAt: null, expiresAt: { gt: now }, refreshExpiresAt: { gt: now } },
      orderBy: { createdAt: 'desc' },
    });
  }
}

/**
 * Deletes up to `limit` sessions whose absolute expiry or revocation is before
 * `before`, one index-backed query per reason, so a large table is pruned in
 * short transactions. Returns how many were deleted. Idle expiry is
 * {@link deleteIdleExpiredSessions}.
 */
export async function deleteEndedSessions(prisma: PrismaClient, before: Date, limit: number): Promise<number> {
  let deleted = 0;
  for (const where of [{ expiresAt: { lt: before } }, { revokedAt: { lt: before } }]) {
    const rows = await prisma.session.findMany({ where, select: { id: true }, take: limit - deleted });
    if (rows.length === 0) continue;
    const { count } = await prisma.session.deleteMany({ where: { id: { in: rows.map((row) => row.id) } } });
    deleted += count;
    if (deleted >= limit) break;
  }
  return deleted;
}

/**
 * Deletes the sessions idle-expired before `before` among the next `chunk`
 * sessions in primary-key order after `after` (null: from the start), and
 * returns how many it deleted and where the next chunk starts (null: the scan
 * is done). `refresh_expires_at` has no index on purpose: every refresh
 * rewrites it, and an index on it doubled the cost of the rotation's UPDATE on
 * SQLite and ruled out HOT updates on PostgreSQL. A pass over the table in
 * short primary-key ranges instead costs the pruner a scan per interval.
 */
export async function deleteIdleExpiredSessions(
  prisma: PrismaClient,
  before: Date,
  after: string | null,
  chunk: number,
): Promise<{ deleted: number; next: string | null }> {
  const fromAfter = after === null ? {} : { gt: after };
  const last = await prisma.session.findFirst({
    where: { id: fromAfter },
    orderBy: { id: 'asc' },
    skip: chunk - 1,
    select: { id: true },
  });
  const { count } = await prisma.session.deleteMany({
    where: { id: last ? { ...fromAfter, lte: last.id } : fromAfter, refreshExpiresAt: { lt: before } },
  });
  return { deleted: count, next: last?.id ?? null };
}
