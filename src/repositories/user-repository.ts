import type { PrismaClient } from '../db/database.js';
import type { SqlDriver } from '../db/sql-driver.js';
import { inDatabaseSpan } from '../telemetry/tracing.js';
import { markTokensRevoked } from './session-repository.js';

/** A stored user, as the services see it. */
export interface UserRecord {
  id: string;
  username: string;
  passwordHash: string;
  roles: string[];
  createdAt: Date;
  disabledAt: Date | null;
}

export type UserRow = {
  id: string;
  username: string;
  passwordHash: string;
  roles: string;
  createdAt: Date;
  disabledAt: Date | null;
};

/** A users row as the services see it (roles are stored space-separated). */
export function toUserRecord(row: UserRow): UserRecord {
  return {
    id: row.id,
    username: row.username,
    passwordHash: row.passwordHash,
    roles: rolesOf(row.roles),
    createdAt: row.createdAt,
    disabledAt: row.disabledAt,
  };
}

/** Roles as stored: space-separated. */
export function rolesOf(stored: string): string[] {
  return stored.split(' ').filter(Boolean);
}

/** Prisma's code for a unique-constraint violation. */
function isUniqueViolation(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'P2002';
}

/** Users table access. Usernames are looked up by their canonical key. */
export class UserRepository {
  constructor(
    private readonly prisma: PrismaClient,
    private readonly sql: SqlDriver,
  ) {}

  /** Inserts a user; returns null when the username key is already taken. */
  async create(user: {
    id: string;
    username: string;
    usernameKey: string;
    passwordHash: string;
    roles: string[];
  }): Promise<UserRecord | null> {
    try {
      const row = await this.prisma.user.create({ data: { ...user, roles: user.roles.join(' ') } });
      return toUserRecord(row);
    } catch (error) {
      if (isUniqueViolation(error)) return null;
      throw error;
    }
  }

  /** Straight through the driver (see src/db/sql-driver.ts): every login looks its user up. */
  async findByUsernameKey(usernameKey: string): Promise<UserRecord | null> {
    const rows = await inDatabaseSpan(this.sql.system, 'User', 'findByUsernameKey', () =>
      this.sql.query<UserRow>(
        `SELECT id AS "id", username AS "username", password_hash AS "passwordHash", roles AS "roles",
                created_at AS "createdAt", disabled_at AS "disabledAt"
           FROM users
          WHERE username_key = $1`,
        [usernameKey],
      ),
    );
    const row = rows[0];
    return row ? toUserRecord(row) : null;
  }

  async findById(id: string): Promise<UserRecord | null> {
    const row = await this.prisma.user.findUnique({ where: { id } });
    return row ? toUserRecord(row) : null;
  }

  /** Replaces the stored hash only if it is still `expectedHash` (a login-time re-hash must not undo a password change). */
  async upgradePasswordHash(id: string, expectedHash: string, passwordHash: string): Promise<void> {
    await this.prisma.user.updateMany({ where: { id, passwordHash: expectedHash }, data: { passwordHash } });
  }

  /**
   * Sets a new password hash and revokes every other active session of the
   * user in one transaction, so no session opened with the old password survives.
   *
   * Deliberately no per-user `tokens_revoked_at` here: the caller keeps their
   * session, and a per-user time would also kill the access token they are
   * using right now. Every other access token belongs to one of the sessions
   * revoked here, so /v1/revocations lists each of them by `sid` instead.
   */
  async changePassword(id: string, passwordHash: string, keepSessionId: string | null, now: Date): Promise<void> {
    await this.prisma.$transaction([
      this.prisma.user.update({ where: { id }, data: { passwordHash } }),
      this.prisma.session.updateMany({
        where: { userId: id, revokedAt: null, ...(keepSessionId ? { id: { not: keepSessionId } } : {}) },
        data: { revokedAt: now, revokedReason: 'password_changed' },
      }),
    ]);
  }

  /**
   * Disables a user, revokes all their sessions and marks every access token
   * issued to them so far as revoked (`tokens_revoked_at`, published in
   * /v1/revocations), in one transaction. Returns false when no such user.
   */
  async disable(usernameKey: string, now: Date): Promise<boolean> {
    const user = await this.prisma.user.findUnique({ where: { usernameKey }, select: { id: true } });
    if (!user) return false;
    await this.prisma.$transaction([
      this.prisma.user.update({ where: { id: user.id }, data: { disabledAt: now } }),
      this.prisma.session.updateMany({
        where: { userId: user.id, revokedAt: null },
        data: { revokedAt: now, revokedReason: 'user_disabled' },
      }),
      markTokensRevoked(this.prisma, user.id, now),
    ]);
    return true;
  }
}
